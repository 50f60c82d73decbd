"""Host side of the guest protocol (guest_agent.sh; docs/executor.md, "MicroVM isolation").

One byte stream each way: a virtio-serial port on a unix socket (QEMU) or the serial console on Firecracker's
stdin/stdout. Guest frames are lines starting with `@@fleet `; anything else (kernel messages on a shared serial
console) is kept as console noise for diagnostics.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

log = logging.getLogger(__name__)
FRAME = b"@@fleet "
STREAMS = {"1": "stdout", "2": "stderr"}
OutputSink = Callable[[str, bytes], None]


@dataclass
class StepExit:
    code: int
    flag: str = ""  # "oom": the guest's OOM killer ran during the step; "error": the agent could not start it


class GuestChannel:
    def __init__(self, reader: IO[bytes], write: Callable[[bytes], None]) -> None:
        self._reader = reader
        self._write = write
        self._lock = threading.Condition()
        self._sinks: dict[str, OutputSink] = {}
        self._exits: dict[str, StepExit] = {}
        self._buffered: dict[str, list[tuple[str, bytes]]] = {}
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.noise: deque[str] = deque(maxlen=50)
        self._thread = threading.Thread(target=self._read, name="guest-channel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._write(line.encode() + b"\n")

    def attach(self, step: str, sink: OutputSink) -> None:
        """Route the step's output to sink; output that came before is delivered first."""
        with self._lock:
            for stream, data in self._buffered.pop(step, []):
                sink(stream, data)
            self._sinks[step] = sink

    def run(self, step: str, sink: OutputSink) -> None:
        self.attach(step, sink)
        self.send(f"RUN {step}")

    def wait_exit(self, step: str, timeout: float) -> StepExit | None:
        """The step's exit, or None on timeout or when the channel closed (the VM is gone)."""
        with self._lock:
            self._lock.wait_for(lambda: step in self._exits or self.closed.is_set(), timeout)
            return self._exits.get(step)

    def _read(self) -> None:
        try:
            for raw in iter(self._reader.readline, b""):
                line = raw.rstrip(b"\r\n")
                at = line.find(FRAME)
                if at < 0:
                    if line.strip():
                        self.noise.append(line.decode(errors="replace"))
                    continue
                self._frame(line[at + len(FRAME) :].decode(errors="replace").split(" "))
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self.closed.set()
                self._lock.notify_all()

    def _frame(self, parts: list[str]) -> None:
        kind = parts[0]
        if kind == "READY":
            self.ready.set()
        elif kind == "OUT" and len(parts) == 4:
            try:
                data = base64.b64decode(parts[3], validate=True)
            except (binascii.Error, ValueError):
                self.noise.append(f"bad frame for step {parts[1]}")
                return
            self._output(parts[1], STREAMS.get(parts[2], "stderr"), data)
        elif kind == "EXIT" and len(parts) >= 3:
            with self._lock:
                code = int(parts[2]) if parts[2].lstrip("-").isdigit() else 1
                self._exits[parts[1]] = StepExit(code, parts[3] if len(parts) > 3 else "")
                self._lock.notify_all()
        elif kind == "LOG":
            self.noise.append(" ".join(parts[1:]))
            log.info("guest: %s", " ".join(parts[1:]))

    def _output(self, step: str, stream: str, data: bytes) -> None:
        with self._lock:
            sink = self._sinks.get(step)
            if sink is None:
                self._buffered.setdefault(step, []).append((stream, data))
                return
        sink(stream, data)
