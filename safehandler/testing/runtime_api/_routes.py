"""The Runtime API as a runtime sees it: each route's answer, and the record every exchange leaves.

``Routes`` owns the state both sides share, under one condition: the events to serve, the
invocations handed out and answered, the connections and requests. ``LocalRuntimeAPI``
builds on it what a test does: start and stop, add events, read what happened, wait.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, Protocol
from urllib.parse import unquote

from ._feed import EventFeed
from ._http import (
    Handler,
    decode,
    not_allowed,
    peer_closed,
    read_body,
    send,
    send_error,
    send_json,
    shut,
)
from ._procfs import peer_pid
from ._records import ConnectionInfo, InitError, Invocation, InvocationResult, RuntimeEvent

__all__ = ["API_VERSION", "MAX_RESPONSE_BYTES", "POLL_S", "Routes", "Runtime"]

API_VERSION = "2018-06-01"
#: Lambda's limit on a synchronous response payload (6 MB): above it, 413 and an error result.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
POLL_S = 0.05  # how often a blocked ``next`` checks its client is still there

_PREFIX = f"/{API_VERSION}/runtime"
_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    status: int
    connection: int


class Runtime(Protocol):
    """A runtime started for the API: a ``RuntimeProcess``, seen from the server."""

    @property
    def pid(self) -> int: ...

    def stop(self, grace: float = ...) -> int: ...


class Routes:
    """The runtime's side of a local Runtime API: what each request gets, and what it leaves.

    The HTTP handler calls in through the ``_http.Exchanges`` methods; all the state is read
    and written under ``_cond``.
    """

    def __init__(
        self,
        events: Iterable[Any] | queue.Queue[Any] | None,
        *,
        timeout: float,
        function_arn: str,
        max_response_bytes: int,
        close_when_done: bool,
    ) -> None:
        self.timeout = timeout
        self.function_arn = function_arn
        self.max_response_bytes = max_response_bytes

        self._cond = threading.Condition()
        self._errors: list[BaseException] = []
        # the feed is read and fed under self._cond; skipped events go to self._errors
        self._feed = EventFeed(events, finished=close_when_done, errors=self._errors)
        self._pending: dict[str, Invocation] = {}
        self._invocations: list[Invocation] = []
        self._results: list[InvocationResult] = []
        self._init_errors: list[InitError] = []
        self._connections: dict[int, ConnectionInfo] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._requests: list[_Request] = []
        self._waiting = 0
        self._active = 0  # requests being handled now
        self._conn_seq = itertools.count(1)
        self._processes: list[Runtime] = []
        self._stopping = False

    # -- connections and requests, as the HTTP handler reports them --

    def _open(self, handler: Handler) -> ConnectionInfo:
        port = handler.client_address[1]
        server_port = handler.server.server_address[1]
        with self._cond:
            procs = list(self._processes)
        pid = peer_pid(port, server_port, [proc.pid for proc in procs])
        with self._cond:
            info = ConnectionInfo(next(self._conn_seq), port, pid, time.monotonic())
            self._connections[info.seq] = info
            self._sockets[info.seq] = handler.connection
            self._threads.append(threading.current_thread())
            if self._stopping:  # accepted as the server stopped: read nothing, close
                shut(handler.connection)
            return info

    def _close(self, info: ConnectionInfo) -> None:
        with self._cond:
            info.closed_at = time.monotonic()
            self._sockets.pop(info.seq, None)
            with contextlib.suppress(ValueError):
                self._threads.remove(threading.current_thread())
            self._cond.notify_all()

    def _fault(self, exc: BaseException) -> None:
        with self._cond:
            self._errors.append(exc)

    def _dispatch(self, h: Handler, method: str) -> None:
        with self._cond:
            self._active += 1
        try:
            self._route(h, method)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    # -- the routes --

    def _route(self, h: Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        status: int
        if path == f"{_PREFIX}/invocation/next":
            status = self._next(h) if method == "GET" else not_allowed(h)
        elif path == f"{_PREFIX}/init/error":
            status = self._init_error(h, "init") if method == "POST" else not_allowed(h)
        elif path == f"{_PREFIX}/restore/next":
            status = send_json(h, HTTPStatus.OK, {}) if method == "GET" else not_allowed(h)
        elif path == f"{_PREFIX}/restore/error":
            status = self._init_error(h, "restore") if method == "POST" else not_allowed(h)
        elif path.startswith(f"{_PREFIX}/invocation/") and path.endswith(("/response", "/error")):
            request_id, kind = path[len(f"{_PREFIX}/invocation/") :].rsplit("/", 1)
            if method != "POST":
                status = not_allowed(h)
            else:
                status = self._answer(h, unquote(request_id), kind)
        else:
            read_body(h)
            status = send_error(h, HTTPStatus.NOT_FOUND, "NotFound", f"no route for {path}")
        if status == 0:  # nothing was sent: the client went away
            self._record(h, 0)

    def _record(self, h: Handler, status: int) -> None:
        with self._cond:
            self._requests.append(
                _Request(h.command, h.path.split("?", 1)[0], status, h.conn_info.seq)
            )

    def _next(self, h: Handler) -> int:
        read_body(h)
        taken: tuple[int, Any, bytes] | None = None
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                while not self._stopping:
                    if peer_closed(h.connection):
                        h.close_connection = True
                        return 0  # nobody to answer: leave the event for another runtime
                    taken = self._feed.take()
                    if taken is not None:
                        break
                    self._cond.wait(POLL_S)
            finally:
                self._waiting -= 1
        if taken is None:  # stopping: what Lambda does at shutdown, the runtime must exit
            h.close_connection = True
            return send_error(
                h, HTTPStatus.INTERNAL_SERVER_ERROR, "Runtime.Shutdown", "the API is stopping"
            )
        index, event, body = taken
        spec = event if isinstance(event, RuntimeEvent) else RuntimeEvent(event)
        request_id = spec.request_id or str(uuid.uuid4())
        timeout = spec.timeout if spec.timeout is not None else self.timeout
        deadline_ms = int((time.time() + timeout) * 1000)
        headers = {
            "Content-Type": spec.content_type,
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": spec.trace_id or _trace_id(),
        }
        if spec.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(spec.client_context)
        if spec.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = json.dumps(spec.cognito_identity)
        if spec.tenant_id is not None:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = spec.tenant_id
        invocation = Invocation(
            request_id=request_id,
            index=index,
            event=spec.payload,
            deadline_ms=deadline_ms,
            connection=h.conn_info.seq,
            client_port=h.conn_info.client_port,
            pid=h.conn_info.pid,
            user_agent=h.headers.get("User-Agent"),
            fetched_at=time.monotonic(),
        )
        with self._cond:
            self._pending[request_id] = invocation
            self._invocations.append(invocation)
        try:
            return send(h, HTTPStatus.OK, body, headers)
        except OSError:  # the runtime went away before it got the event: serve it again
            with self._cond:
                del self._pending[request_id]
                self._invocations.remove(invocation)
                self._feed.put_back(index, event)
                self._cond.notify_all()
            raise

    def _answer(self, h: Handler, request_id: str, kind: str) -> int:
        raw = read_body(h)
        content_type = h.headers.get("Content-Type")
        headers = dict(h.headers.items())
        status: Literal["success", "error"] = "success" if kind == "response" else "error"
        body: Any = decode(raw, content_type)
        error_type = h.headers.get(_ERROR_TYPE) or _error_type_of(body)
        too_large = kind == "response" and len(raw) > self.max_response_bytes
        if too_large:
            status, error_type = "error", "Function.ResponseSizeTooLarge"
            body = {
                "errorMessage": f"Response payload size ({len(raw)} bytes) exceeded maximum "
                f"allowed payload size ({self.max_response_bytes} bytes).",
                "errorType": error_type,
            }
        with self._cond:
            invocation = self._pending.pop(request_id, None)
            if invocation is not None:
                self._results.append(
                    InvocationResult(
                        request_id=request_id,
                        index=invocation.index,
                        status=status,
                        body=body,
                        raw=raw,
                        content_type=content_type,
                        error_type=error_type if status == "error" else None,
                        headers=headers,
                        connection=h.conn_info.seq,
                        client_port=h.conn_info.client_port,
                        pid=h.conn_info.pid,
                        user_agent=h.headers.get("User-Agent"),
                        fetched_at=invocation.fetched_at,
                        answered_at=time.monotonic(),
                    )
                )
                self._cond.notify_all()
        if invocation is None:  # unknown, or answered already: Lambda says 400 to both
            return send_error(h, HTTPStatus.BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
        if too_large:
            return send_error(
                h,
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({self.max_response_bytes} bytes).",
            )
        return send_json(h, HTTPStatus.ACCEPTED, {"status": "OK"})

    def _init_error(self, h: Handler, phase: Literal["init", "restore"]) -> int:
        raw = read_body(h)
        body = decode(raw, h.headers.get("Content-Type"))
        with self._cond:
            self._init_errors.append(
                InitError(
                    error_type=h.headers.get(_ERROR_TYPE) or _error_type_of(body),
                    body=body,
                    raw=raw,
                    headers=dict(h.headers.items()),
                    phase=phase,
                    connection=h.conn_info.seq,
                    client_port=h.conn_info.client_port,
                    pid=h.conn_info.pid,
                    user_agent=h.headers.get("User-Agent"),
                    at=time.monotonic(),
                )
            )
            self._cond.notify_all()
        return send_json(h, HTTPStatus.ACCEPTED, {"status": "OK"})


def _error_type_of(body: Any) -> str | None:
    if isinstance(body, dict):
        value = body.get("errorType")
        return value if isinstance(value, str) and value else None
    return None


def _trace_id() -> str:
    return (
        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
        f"Parent={uuid.uuid4().hex[:16]};Sampled=0"
    )
