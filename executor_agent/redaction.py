"""Secrets are replaced before any output leaves the machine, also when a secret arrives split across two reads."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping

DEFAULT_REPLACEMENT = "******"


class Redactor:
    """Replaces every secret (longest first) with its replacement. Immutable; make a stream per output."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = {s: r for s, r in secrets.items() if s}
        ordered = sorted(self.secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        self.longest = len(ordered[0]) if ordered else 0

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.secrets[m.group(0)], text)

    def holdback_start(self, text: str) -> int:
        """Where the longest tail of text that is a proper prefix of some secret begins (len(text) if none)."""
        for pos in range(max(0, len(text) - (self.longest - 1)), len(text)):
            tail = text[pos:]
            if any(secret.startswith(tail) for secret in self.secrets):
                return pos
        return len(text)

    def redact_all(self, values: list[str]) -> list[str]:
        return [self.redact(v) for v in values]

    def stream(self) -> RedactingStream:
        return RedactingStream(self)


class RedactingStream:
    """Incremental redaction of a byte stream.

    The tail that could still be the start of a secret is held back until more bytes arrive or the stream ends,
    so the result is the same as redacting the whole output at once, whatever the chunking.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> str:
        return self._emit(self._pending + self._decoder.decode(data), final=False)

    def close(self) -> str:
        return self._emit(self._pending + self._decoder.decode(b"", final=True), final=True)

    def _emit(self, text: str, final: bool) -> str:
        pattern = self._redactor._pattern
        if pattern is None:
            self._pending = ""
            return text
        # Only a tail that could still grow into a secret is held back; a secret that starts before `cut`
        # therefore lies wholly inside `text`, so matching there is final.
        cut = len(text) if final else self._redactor.holdback_start(text)
        out: list[str] = []
        pos = 0
        for m in pattern.finditer(text):
            if m.start() >= cut:
                break
            out.append(text[pos : m.start()])
            out.append(self._redactor.secrets[m.group(0)])
            pos = m.end()
        end = max(cut, pos)
        out.append(text[pos:end])
        self._pending = text[end:]
        return "".join(out)
