"""HTTP plumbing of the local Runtime API: the threaded server, its handler, bodies in and out.

The handler knows no route: it tells the API (``Exchanges``) of each connection and request,
and the API answers through ``send``, which records the status before the client can see it.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from ._records import ConnectionInfo

__all__ = [
    "Exchanges",
    "Handler",
    "Server",
    "decode",
    "not_allowed",
    "peer_closed",
    "read_body",
    "send",
    "send_error",
    "send_json",
    "shut",
]


class Exchanges(Protocol):
    """What the HTTP side calls back into: ``LocalRuntimeAPI``, seen from below."""

    def _open(self, handler: Handler) -> ConnectionInfo: ...

    def _close(self, info: ConnectionInfo) -> None: ...

    def _dispatch(self, h: Handler, method: str) -> None: ...

    def _record(self, h: Handler, status: int) -> None: ...

    def _fault(self, exc: BaseException) -> None: ...


class Server(ThreadingHTTPServer):
    daemon_threads = True  # joined by LocalRuntimeAPI.stop(), with a bound
    block_on_close = False

    def __init__(self, api: Exchanges, port: int) -> None:
        self.api = api
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a runtime killed mid-request: its business
            return
        if exc is not None:
            self.api._fault(exc)
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as awslambdaric's curl client expects
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every answer by ~40 ms.
    disable_nagle_algorithm = True
    server: Server
    conn_info: ConnectionInfo

    def setup(self) -> None:
        super().setup()
        self.conn_info = self.server.api._open(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._close(self.conn_info)

    def do_GET(self) -> None:
        self.server.api._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.api._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.api._dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.api._dispatch(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the runtime's own logs are what matter


def read_body(h: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(h.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()
    length = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(length) if length > 0 else b""


def send(h: Handler, status: HTTPStatus, body: bytes, headers: Mapping[str, str]) -> int:
    h.server.api._record(h, int(status))  # before the client can see the answer
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(body)))
    if h.close_connection:
        h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(body)
    h.wfile.flush()
    return int(status)


def send_json(h: Handler, status: HTTPStatus, obj: Any) -> int:
    return send(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json"})


def send_error(h: Handler, status: HTTPStatus, kind: str, message: str) -> int:
    return send_json(h, status, {"errorMessage": message, "errorType": kind})


def not_allowed(h: Handler) -> int:
    read_body(h)
    return send_error(h, HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed", h.command)


def shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def peer_closed(sock: socket.socket) -> bool:
    """True when the client has closed its end (EOF readable, nothing sent)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def decode(raw: bytes, content_type: str | None) -> Any:
    if content_type is None or "json" in content_type.lower():
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw
