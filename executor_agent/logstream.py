"""Execution log entries: one per command, streamed to the server at most once a second and always at the end.

Output is redacted per stream before it is split into `stdout: ` / `stderr: ` lines, and capped per entry with a
visible marker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from executor_agent.apiclient import ApiError, JobGone, backoff_delays, retry, server_answering
from executor_agent.protocol.durations import format_size
from executor_agent.redaction import Redactor

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 1.0
STREAMS = ("stdout", "stderr")


class EntrySink(Protocol):
    def add_log_entry(self, entry: dict[str, Any]) -> int: ...

    def update_log_entry(self, entry_id: int, entry: dict[str, Any]) -> None: ...


class LogEntry:
    """Output of one command. Thread-safe: readers of stdout and stderr write concurrently.

    Work and memory are bounded by the cap whatever the output looks like: complete lines are prefixed with one
    str.replace per chunk (no per-line Python work), an unfinished line is kept as pieces no longer than the room
    left, and once the cap is reached further output is only counted, neither redacted nor split. What is kept
    was redacted first; a line too long for the room left keeps its head up to the cap.
    """

    def __init__(self, key: str, command: list[str], redactor: Redactor, cap: int) -> None:
        self.key = key
        self.command = redactor.redact_all(command)
        self.start_time = datetime.now(UTC)
        self._started = time.monotonic()
        self._cap = cap
        self._streams = {s: redactor.stream() for s in STREAMS}
        self._partial: dict[str, list[str]] = {s: [] for s in STREAMS}
        self._partial_bytes = dict.fromkeys(STREAMS, 0)
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0  # bytes of output not kept, for the marker
        self._truncated = False
        self._lock = threading.Lock()
        self.exit_code: int | None = None
        self.duration_ms: int | None = None
        self.entry_id: int | None = None
        self.sent_at = 0.0
        self.dirty = True

    def write(self, stream: str, data: bytes) -> None:
        with self._lock:
            if self._truncated:
                self._dropped += len(data)
                self.dirty = True
                return
            self._take(stream, self._streams[stream].feed(data), final=False)

    def note(self, text: str) -> None:
        """A line from the executor itself, shown in the entry's output as stderr."""
        self.write("stderr", text.encode() + b"\n")

    def finish(self, exit_code: int) -> None:
        with self._lock:
            for stream in STREAMS:
                rest = self._streams[stream].close()
                if self._truncated:
                    self._dropped += len(rest.encode())
                else:
                    self._take(stream, rest, final=True)
            self.exit_code = exit_code
            self.duration_ms = int((time.monotonic() - self._started) * 1000)
            self.dirty = True

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def _take(self, stream: str, text: str, final: bool) -> None:
        prefix = f"{stream}: "
        end = text.rfind("\n")
        if end >= 0:
            head = "".join(self._partial[stream]) + text[:end]
            self._partial[stream], self._partial_bytes[stream] = [], 0
            self._append(prefix + head.replace("\n", "\n" + prefix) + "\n", len(prefix))
            text = text[end + 1 :]
        if self._truncated:
            self._dropped += len(text.encode()) + self._drop_partials()
            return
        if text:
            self._partial[stream].append(text)
            self._partial_bytes[stream] += len(text.encode())
            # A line that can no longer fit is cut now, so an endless line costs no more than the cap.
            if len(prefix) + self._partial_bytes[stream] + 1 > self._cap - self._size:
                final = True
        if final and self._partial[stream]:
            line = "".join(self._partial[stream])
            self._partial[stream], self._partial_bytes[stream] = [], 0
            self._append(prefix + line + "\n", len(prefix))
        if self._truncated:
            self._dropped += self._drop_partials()

    def _drop_partials(self) -> int:
        dropped = sum(self._partial_bytes.values())
        for stream in STREAMS:
            self._partial[stream], self._partial_bytes[stream] = [], 0
        return dropped

    def _append(self, block: str, prefix_len: int) -> None:
        """Keep block (whole lines, each prefixed), or its head up to the cap; count the rest as dropped."""
        if self._truncated:
            return
        data = block.encode()
        room = self._cap - self._size
        self.dirty = True
        if len(data) <= room:
            self._parts.append(block)
            self._size += len(data)
            return
        self._truncated = True
        kept = data[: max(0, room - 1)].decode(errors="ignore")  # not inside a character; room for the newline
        cut = kept.rfind("\n") + 1  # whole lines kept as they are; the next one keeps its head if it has one
        if len(kept) - cut > prefix_len:
            kept += "\n"
        else:
            kept = kept[:cut]
        self._parts.append(kept)
        self._size += len(kept.encode())
        self._dropped += _content_bytes(data, prefix_len) - _content_bytes(kept.encode(), prefix_len)

    def marker(self) -> str:
        if not self._truncated:
            return ""
        return f"[output truncated: this entry exceeded {format_size(self._cap)}; {self._dropped} bytes dropped]\n"

    def output(self) -> str:
        with self._lock:
            return "".join(self._parts) + self.marker()

    def payload(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "key": self.key,
            "command": self.command,
            "startTime": self.start_time.isoformat(),
            "out": self.output(),
        }
        if self.exit_code is not None:
            entry["exitCode"] = self.exit_code
            entry["durationMs"] = self.duration_ms
        return entry


def _content_bytes(block: bytes, prefix_len: int) -> int:
    """Bytes of output in prefixed lines: without the `stdout: ` prefixes (the newlines are output)."""
    lines = block.count(b"\n") + (0 if block.endswith(b"\n") or not block else 1)
    return len(block) - lines * prefix_len


class LogStreamer:
    """Sends a job's entries: as soon as they open (from the flush thread, so the command starts without waiting for
    the server), then at most every FLUSH_INTERVAL while they change, then once more when they end.

    A failed send is not fatal: the next flush sends the whole entry again. JobGone (the server no longer lets
    this executor write about the job) calls on_gone, so the job is abandoned without waiting for a heartbeat.
    """

    def __init__(
        self, sink: EntrySink, redactor: Redactor, cap: int, on_gone: Callable[[], object] = lambda: None
    ) -> None:
        self._sink = sink
        self._redactor = redactor
        self._cap = cap
        self._entries: list[LogEntry] = []
        self._list_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.gone: JobGone | None = None
        self._on_gone = on_gone
        # After a failed send the periodic flush backs off (the one policy of apiclient), unless the server
        # answers again meanwhile.
        self._delays = backoff_delays()
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="log-streamer", daemon=True)
        self._thread.start()

    def _add(self, entry: LogEntry) -> None:
        with self._list_lock:
            self._entries.append(entry)

    def entries(self) -> list[LogEntry]:
        with self._list_lock:
            return list(self._entries)

    def open(self, key: str, command: list[str]) -> LogEntry:
        entry = LogEntry(key, command, self._redactor, self._cap)
        self._add(entry)
        self._wake.set()
        return entry

    def record(self, key: str, command: list[str], text: str, exit_code: int, stream: str = "stdout") -> None:
        """An entry for something that is over as soon as it starts: one request instead of two."""
        entry = LogEntry(key, command, self._redactor, self._cap)
        entry.write(stream, text.encode())
        entry.finish(exit_code)
        self._add(entry)
        self._send(entry)

    def close(self, entry: LogEntry, exit_code: int) -> None:
        entry.finish(exit_code)
        self._send(entry)

    def _send(self, entry: LogEntry, strict: bool = False) -> None:
        with self._send_lock:
            if not entry.dirty or self.gone is not None:
                return
            entry.dirty = False
            entry.sent_at = time.monotonic()
            try:
                if entry.entry_id is None:
                    entry.entry_id = self._sink.add_log_entry(entry.payload())
                else:
                    self._sink.update_log_entry(entry.entry_id, entry.payload())
                self._delays, self._retry_at = backoff_delays(), 0.0
            except JobGone as exc:
                self.gone = exc
                self._on_gone()
            except ApiError as exc:
                entry.dirty = True
                self._retry_at = time.monotonic() + next(self._delays)
                if strict:
                    raise
                log.warning("log entry %s not sent yet: %s", entry.key, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            now = time.monotonic()
            if now < self._retry_at and not server_answering():
                continue
            for entry in self.entries():
                if entry.entry_id is None or now - entry.sent_at >= FLUSH_INTERVAL:
                    self._send(entry)

    def stop(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Stop the periodic flush, then deliver what is unsent, retrying until should_stop() (the result of the
        job comes after its logs, so they are not lost to a short server outage)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        for entry in self.entries():
            try:
                retry(partial(self._send, entry, True), what=f"sending log entry {entry.key}", should_stop=should_stop)
            except ApiError as exc:
                log.error("log entry %s NOT delivered: %s", entry.key, exc)
