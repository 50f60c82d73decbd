"""Output that never ends a line, or that goes far past the cap: linear work, memory bounded by the cap, the head
of the line kept, and a true count of what was dropped (docs/executor.md, "Log entries")."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from executor_agent.job import StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.redaction import Redactor
from executor_agent.runtimes.base import run_host_command

MiB = 1 << 20


def marker_count(out: str) -> int:
    tail = out.rsplit("[output truncated: this entry exceeded ", 1)[1]
    return int(tail.split("; ", 1)[1].split(" bytes dropped]")[0])


def test_endless_line_keeps_its_head_in_bounded_memory() -> None:
    cap, total, chunk = MiB, 100 * 1000 * 1000, b"x" * 65536
    entry = LogEntry("k", [], Redactor({"secret-value": "***"}), cap=cap)
    tracemalloc.start()
    written = 0
    while written < total:
        piece = chunk[: total - written]
        entry.write("stdout", piece)
        written += len(piece)
    entry.finish(0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = entry.output()
    head = cap - len("stdout: ") - 1
    assert out.startswith("stdout: " + "x" * head + "\n[output truncated: this entry exceeded 1M; ")
    assert marker_count(out) == total - head  # true, not "3145768 bytes over"
    assert peak < 6 * cap, f"peak {peak} bytes: memory must be bounded by the cap, not the line"


def test_a_secret_in_the_kept_head_is_redacted() -> None:
    entry = LogEntry("k", [], Redactor({"hunter2-token": "******"}), cap=4096)
    entry.write("stdout", b"a hunter2-")
    entry.write("stdout", b"token b " + b"y" * 100_000)
    entry.write("stderr", b"hunter2-token\n")
    entry.finish(0)
    out = entry.output()
    assert "hunter2" not in out and out.startswith("stdout: a ****** b yyy")
    assert len(out.encode()) < 4096 + 100


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.binary(max_size=300)), max_size=30),
    st.integers(min_value=40, max_value=2000),
)
def test_counts_add_up_whatever_the_chunking(writes: list[tuple[str, bytes]], cap: int) -> None:
    # Without secrets or invalid UTF-8, every byte written is either kept (without the prefixes) or counted.
    entry = LogEntry("k", [], Redactor({}), cap=cap)
    for stream, data in writes:
        entry.write(stream, data.replace(b"\r", b"").decode("ascii", "ignore").encode())
    entry.finish(0)
    out = entry.output()
    total = sum(len(d.replace(b"\r", b"").decode("ascii", "ignore").encode()) for _, d in writes)
    body = out.split("[output truncated", 1)[0]
    assert body == "" or body.endswith("\n")
    kept_lines = body.split("\n")[:-1]
    assert all(line.startswith(("stdout: ", "stderr: ")) for line in kept_lines)
    kept = sum(len(line) + 1 - len("stdout: ") for line in kept_lines)
    assert len(body.encode()) <= cap
    if "[output truncated" in out:
        # A final unterminated line gains a newline when kept; everything else is accounted for exactly.
        assert total - kept <= marker_count(out) <= total - kept + 2
    else:
        assert kept >= total


def test_a_real_step_printing_100_mb_without_newlines(tmp_path: Path) -> None:
    cap, total = 4 * MiB, 100 * 1000 * 1000
    entry = LogEntry("step", [], Redactor({"secret-value": "***"}), cap=cap)
    script = f"head -c {total} /dev/zero | tr '\\0' x"
    code = run_host_command(["sh", "-c", script], tmp_path, entry, StopSignal())
    entry.finish(code)
    out = entry.output()
    head = cap - len("stdout: ") - 1
    assert code == 0
    assert out.startswith("stdout: " + "x" * head + "\n[output truncated: this entry exceeded 4M; ")
    assert marker_count(out) == total - head
