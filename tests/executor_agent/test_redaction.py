"""Redaction: no secret leaves the machine, whatever the chunking; output lines and the per-entry cap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from executor_agent.logstream import LogEntry
from executor_agent.redaction import Redactor

# Secrets and surrounding text come from different alphabets than the replacement, so a replacement can never
# itself spell a secret and the property "no secret substring" is exact.
SECRET_ALPHABET = st.characters(codec="utf-8", exclude_characters="#\n", categories=("L", "N", "P", "S", "Zs"))
secret_text = st.text(SECRET_ALPHABET, min_size=1, max_size=24)


@st.composite
def leaky_output(draw: st.DrawFn) -> tuple[dict[str, str], bytes, list[int]]:
    secrets = draw(st.lists(secret_text, min_size=1, max_size=4, unique=True))
    pieces = draw(st.lists(st.one_of(st.sampled_from(secrets), st.text(SECRET_ALPHABET, max_size=12)), max_size=12))
    data = "".join(pieces).encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    return {s: "#" * (i + 1) for i, s in enumerate(secrets)}, data, cuts


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(database=None, max_examples=400, deadline=None)
@given(leaky_output())
def test_no_secret_survives_any_chunking(case: tuple[dict[str, str], bytes, list[int]]) -> None:
    secrets, data, cuts = case
    redactor = Redactor(secrets)
    stream = redactor.stream()
    out = "".join(stream.feed(c) for c in chunks(data, cuts)) + stream.close()
    for secret in secrets:
        assert secret not in out
        assert secret.encode() not in out.encode()
    # Chunking never changes the result: the stream equals redacting the whole output at once.
    assert out == redactor.redact(data.decode("utf-8", errors="replace"))


@settings(database=None, max_examples=200, deadline=None)
@given(leaky_output())
def test_log_entry_never_holds_a_secret(case: tuple[dict[str, str], bytes, list[int]]) -> None:
    secrets, data, cuts = case
    entry = LogEntry("step.docker.0", ["echo", *secrets], Redactor(secrets), cap=1 << 20)
    for c in chunks(data, cuts):
        entry.write("stdout", c)
    entry.finish(0)
    raw_lines = entry.output().split("\n")[:-1]
    assert all(line.startswith("stdout: ") for line in raw_lines)
    lines = [line.removeprefix("stdout: ") for line in raw_lines]
    for secret in secrets:
        assert not any(secret in line for line in lines)
        assert not any(secret in arg for arg in entry.command[1:])


def test_secret_split_across_two_reads() -> None:
    entry = LogEntry("k", [], Redactor({"hunter2-token": "******"}), cap=1024)
    entry.write("stdout", b"token is hunter")
    assert "hunter" not in entry.output()  # held back: it may be the start of a secret
    entry.write("stdout", b"2-token\nbye\n")
    entry.finish(0)
    assert entry.output() == "stdout: token is ******\nstdout: bye\n"


def test_output_without_a_secret_prefix_is_not_held_back() -> None:
    entry = LogEntry("k", [], Redactor({"a-much-longer-secret-value": "***"}), cap=1024)
    entry.write("stdout", b"started\n")
    assert entry.output() == "stdout: started\n"
    entry.write("stdout", b"then a-much")
    entry.write("stdout", b"-longer-secret-value\n")
    assert entry.output() == "stdout: started\nstdout: then ***\n"


def test_lines_are_prefixed_per_stream_and_partial_lines_flushed_at_the_end() -> None:
    entry = LogEntry("k", [], Redactor({}), cap=1024)
    entry.write("stdout", b"one\ntw")
    entry.write("stderr", b"oops\n")
    entry.write("stdout", b"o\nthree")
    entry.finish(3)
    assert entry.output() == "stdout: one\nstderr: oops\nstdout: two\nstdout: three\n"
    payload = entry.payload()
    assert payload["exitCode"] == 3 and payload["durationMs"] >= 0


def test_output_is_capped_with_a_visible_marker() -> None:
    entry = LogEntry("k", [], Redactor({}), cap=1024)
    for _ in range(100):
        entry.write("stdout", b"x" * 99 + b"\n")
    entry.finish(0)
    out = entry.output()
    assert len(out.encode()) < 1024 + 100
    # 9 whole lines and the head of the 10th fill the 1K; of 10,000 bytes written 944 were kept.
    assert out.endswith("stdout: " + "x" * 43 + "\n[output truncated: this entry exceeded 1K; 9056 bytes dropped]\n")
    assert out.count("[output truncated") == 1


def test_utf8_split_inside_a_character() -> None:
    secret = "пароль"
    data = f"a {secret} b\n".encode()
    entry = LogEntry("k", [], Redactor({secret: "***"}), cap=1024)
    for i in range(len(data)):
        entry.write("stdout", data[i : i + 1])
    entry.finish(0)
    assert entry.output() == "stdout: a *** b\n"
