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

from executor_agent.apiclient import ApiError, JobGone, retry
from executor_agent.durations import format_size
from executor_agent.redaction import Redactor

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 1.0
STREAMS = ("stdout", "stderr")


class EntrySink(Protocol):
    def add_log_entry(self, entry: dict[str, Any]) -> int: ...

    def update_log_entry(self, entry_id: int, entry: dict[str, Any]) -> None: ...


class LogEntry:
    """Output of one command. Thread-safe: readers of stdout and stderr write concurrently."""

    def __init__(self, key: str, command: list[str], redactor: Redactor, cap: int) -> None:
        self.key = key
        self.command = redactor.redact_all(command)
        self.start_time = datetime.now(UTC)
        self._started = time.monotonic()
        self._cap = cap
        self._streams = {s: redactor.stream() for s in STREAMS}
        self._partial = dict.fromkeys(STREAMS, "")
        self._parts: list[str] = []
        self._size = 0
        self._truncated = False
        self._lock = threading.Lock()
        self.exit_code: int | None = None
        self.duration_ms: int | None = None
        self.entry_id: int | None = None
        self.sent_at = 0.0
        self.dirty = True

    def write(self, stream: str, data: bytes) -> None:
        with self._lock:
            self._take(stream, self._streams[stream].feed(data), final=False)

    def note(self, text: str) -> None:
        """A line from the executor itself, shown in the entry's output as stderr."""
        self.write("stderr", text.encode() + b"\n")

    def finish(self, exit_code: int) -> None:
        with self._lock:
            for stream in STREAMS:
                self._take(stream, self._streams[stream].close(), final=True)
            self.exit_code = exit_code
            self.duration_ms = int((time.monotonic() - self._started) * 1000)
            self.dirty = True

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def _take(self, stream: str, text: str, final: bool) -> None:
        *lines, rest = (self._partial[stream] + text).split("\n")
        if final and rest:
            lines.append(rest)
            rest = ""
        self._partial[stream] = rest
        for line in lines:
            self._append(f"{stream}: {line}\n")

    def _append(self, line: str) -> None:
        if self._truncated:
            return
        size = len(line.encode())
        if self._size + size > self._cap:
            self._truncated = True
            self._parts.append(f"[output truncated: this entry exceeded {format_size(self._cap)}]\n")
        else:
            self._parts.append(line)
            self._size += size
        self.dirty = True

    def output(self) -> str:
        with self._lock:
            return "".join(self._parts)

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
            except JobGone as exc:
                self.gone = exc
                self._on_gone()
            except ApiError as exc:
                entry.dirty = True
                if strict:
                    raise
                log.warning("log entry %s not sent yet: %s", entry.key, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            now = time.monotonic()
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
