"""Protocol-level stand-ins on loopback for the publisher's tests and benchmark.

- `FleetStandIn`: an HTTP server answering GET /api/v1/queues in the fleet server's shape (the real server has its
  own end-to-end test).
- `MonitoringServer`: a real gRPC server implementing google.monitoring.v3.MetricService/CreateTimeSeries with the
  real protobuf messages, since Cloud Monitoring has no emulator.
- `FaultProxy`: an HTTP proxy in front of the moto server that can refuse connections or answer CloudWatch's
  Throttling error, which moto cannot be asked to produce.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import httpx
from google.cloud.monitoring_v3.types import metric_service
from google.protobuf import empty_pb2

CreateTimeSeriesRequestPb = metric_service.CreateTimeSeriesRequest.pb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RestartableHttp:
    """A ThreadingHTTPServer that can be stopped and started again on the same port (an endpoint going down)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class FleetStandIn(_RestartableHttp):
    def __init__(self, token: str = "fleet-api-token-for-tests") -> None:
        super().__init__()
        self.token = token
        self.queues: dict[str, tuple[int, int, int]] = {}  # name -> (queued, processing, errored)
        self.hits = 0
        self.lock = threading.Lock()

    def set(self, name: str, queued: int = 0, processing: int = 0, errored: int = 0) -> None:
        with self.lock:
            self.queues[name] = (queued, processing, errored)

    def body(self) -> dict[str, Any]:
        with self.lock:
            items = sorted(self.queues.items())
        return {
            "queues": [
                {
                    "name": name,
                    "queued": q,
                    "processing": p,
                    "errored": e,
                    "size": q + p + e,
                    "oldestQueuedAgeSeconds": 1.5 if q else None,
                }
                for name, (q, p, e) in items
            ]
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.hits += 1
                if self.headers.get("Authorization") != f"Bearer {stand_in.token}":
                    _reply(self, 401, b'{"detail": "bad token"}', {"Content-Type": "application/json"})
                elif self.path != "/api/v1/queues":
                    _reply(self, 404, b"{}", {"Content-Type": "application/json"})
                else:
                    _reply(self, 200, json.dumps(stand_in.body()).encode(), {"Content-Type": "application/json"})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class FaultProxy(_RestartableHttp):
    """Forwards to `upstream`; answers `throttle_next` requests with CloudWatch's Throttling error first."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.throttle_next = 0
        self.operations: list[str] = []
        self.bodies: list[tuple[float, str, bytes]] = []  # (monotonic time, operation, request body)
        self.lock = threading.Lock()

    def count(self, operation: str) -> int:
        with self.lock:
            return self.operations.count(operation)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                # boto3 speaks CloudWatch's JSON protocol: the operation is named in X-Amz-Target.
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                with proxy.lock:
                    proxy.operations.append(operation)
                    proxy.bodies.append((time.monotonic(), operation, body))
                    throttle = proxy.throttle_next > 0
                    if throttle:
                        proxy.throttle_next -= 1
                if throttle:
                    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "Throttling;Sender"}
                    error = {"__type": "Throttling", "message": "Rate exceeded"}
                    _reply(self, 400, json.dumps(error).encode(), headers)
                    return
                forwarded = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.post(proxy.upstream + self.path, content=body, headers=forwarded, timeout=30)
                keep = ("content-type", "x-amzn-requestid", "x-amzn-query-error")
                _reply(
                    self,
                    upstream.status_code,
                    upstream.content,
                    {k: v for k, v in upstream.headers.items() if k.lower() in keep},
                )

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@dataclass
class MonitoringServer:
    """google.monitoring.v3.MetricService on loopback; records every decoded CreateTimeSeriesRequest."""

    port: int = field(default_factory=free_port)
    requests: list[Any] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0
    fail_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    fail_message: str = "injected failure"
    attempts: int = 0
    received_at: list[float] = field(default_factory=list)
    delay: float = 0.0
    _server: grpc.Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, code: grpc.StatusCode, times: int, message: str) -> None:
        with self._lock:
            self.fail_code, self.fail_next, self.fail_message = code, times, message

    def _create_time_series(self, request: Any, context: grpc.ServicerContext) -> empty_pb2.Empty:
        with self._lock:
            self.attempts += 1
            delay = self.delay
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
            else:
                self.requests.append(request)
                self.received_at.append(time.monotonic())
                self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        if delay:
            time.sleep(delay)
        if failing:
            context.abort(self.fail_code, self.fail_message)
        return empty_pb2.Empty()

    def start(self, tls: tuple[bytes, bytes] | None = None) -> None:
        """Plaintext, or TLS with (private key PEM, certificate PEM) as Google's endpoints are."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "google.monitoring.v3.MetricService",
            {
                "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._create_time_series,
                    request_deserializer=CreateTimeSeriesRequestPb.FromString,
                    response_serializer=empty_pb2.Empty.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        if tls:
            server.add_secure_port(f"127.0.0.1:{self.port}", grpc.ssl_server_credentials([tls]))
        else:
            server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def values(self, request: Any) -> dict[str, int]:
        """queueName -> int64 value of one decoded request."""
        return {ts.metric.labels["queueName"]: ts.points[0].value.int64_value for ts in request.time_series}


def self_signed_certificate() -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) for `localhost` / 127.0.0.1, valid for one day."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
