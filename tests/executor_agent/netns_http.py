"""A small HTTP server for the VM network test, run inside a network namespace the test made.

GET /hello answers one line naming the server, GET /big answers BIG bytes, POST /up reads the body and appends
"<bytes> <seconds from the request to its last byte>" to LOG. Prints "ready" once it listens.
Usage: python -m tests.executor_agent.netns_http NAME PORT LOG
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIG = 512 * 1024


class Handler(BaseHTTPRequestHandler):
    server_name_: str = ""
    log_path: str = ""

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/hello":
            self._answer(f"hello-from-{self.server_name_}\n".encode())
        elif self.path == "/big":
            self._answer(b"x" * BIG)
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        started = time.monotonic()
        want, got = int(self.headers.get("Content-Length", "0")), 0
        while got < want:
            chunk = self.rfile.read(min(65536, want - got))
            if not chunk:
                break
            got += len(chunk)
        with open(self.log_path, "a") as log:
            log.write(f"{got} {time.monotonic() - started:.2f}\n")
        self._answer(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> None:
    name, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    Handler.server_name_, Handler.log_path = name, log
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
