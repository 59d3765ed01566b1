"""The local Runtime API as a test drives it: start and stop it, feed it, read it, wait on it.

What a runtime gets from each route, and the record it leaves, is ``_routes.Routes``;
``LocalRuntimeAPI`` serves those routes on 127.0.0.1 and reads that record under its lock.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from ._feed import encode
from ._http import Server, shut
from ._records import ConnectionInfo, InitError, Invocation, InvocationResult
from ._routes import MAX_RESPONSE_BYTES, Routes, Runtime

__all__ = ["JOIN_S", "LocalRuntimeAPI"]

JOIN_S = 5.0  # bound on joining one connection thread at stop


class LocalRuntimeAPI(Routes):
    """A Lambda Runtime API on ``127.0.0.1`` for one function; a context manager.

    ``events``: the events to serve, in order: an iterable (consumed lazily: a generator may
    be endless) or a ``queue.Queue`` (read as events arrive); ``add_event`` appends more.
    ``close_when_done``: the events given are all there will be (``add_event`` then raises);
    ``next`` still blocks once they are served, as a frozen Lambda environment does.
    """

    def __init__(
        self,
        events: Iterable[Any] | queue.Queue[Any] | None = None,
        *,
        timeout: float = 3.0,
        function_name: str = "safehandler-local",
        function_arn: str | None = None,
        memory_size: int = 1024,
        function_version: str = "$LATEST",
        region: str = "us-east-1",
        close_when_done: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        port: int = 0,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        arn = function_arn or f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        super().__init__(
            events,
            timeout=timeout,
            function_arn=arn,
            max_response_bytes=max_response_bytes,
            close_when_done=close_when_done,
        )
        self.function_name = function_name
        self.region = region
        self.memory_size = memory_size
        self.function_version = function_version
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> LocalRuntimeAPI:
        if self._server is not None:
            return self
        if self._stopping:
            raise RuntimeError("a stopped LocalRuntimeAPI cannot be restarted")
        self._server = Server(self, self._port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"safehandler-runtime-api:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the runtimes started for this API, then the server; idempotent."""
        with self._cond:
            procs = list(self._processes)
        for proc in procs:
            proc.stop()
        with self._cond:
            self._stopping = True  # a blocked next answers 500, a new connection is shut
            self._cond.notify_all()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # no more connections accepted
        with self._cond:
            # Let requests in progress answer, bounded; then wake the threads waiting for
            # the next request on a kept-alive connection.
            self._cond.wait_for(lambda: self._active == 0, JOIN_S)
            sockets = list(self._sockets.values())
        for sock in sockets:
            shut(sock)
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_S)
        server.server_close()
        if self._thread is not None:
            self._thread.join(JOIN_S)

    close = stop

    def __enter__(self) -> LocalRuntimeAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the value of ``AWS_LAMBDA_RUNTIME_API``."""
        if self._server is None:
            raise RuntimeError("the LocalRuntimeAPI is not running: use it as a context manager")
        return f"127.0.0.1:{self._server.server_address[1]}"

    def _adopt(self, runtime: Runtime) -> None:
        """Stop ``runtime`` when this API stops (``run_runtime`` calls this)."""
        with self._cond:
            self._processes.append(runtime)

    # -- events --

    def add_event(self, event: Any) -> None:
        """Serve ``event`` after those already given (``RuntimeEvent`` for headers)."""
        encode(event)  # fail here, not in the server thread
        with self._cond:
            self._feed.add(event)
            self._cond.notify_all()

    def finish_events(self) -> None:
        """No more events will be added; ``next`` keeps blocking once all are served."""
        with self._cond:
            self._feed.finish()
            self._cond.notify_all()

    @property
    def exhausted(self) -> bool:
        """Events are closed and every one has been handed out."""
        with self._cond:
            return self._feed.finished and not self._feed.has_event()

    # -- what happened --

    @property
    def results(self) -> list[InvocationResult]:
        """Answers, in the order they arrived."""
        with self._cond:
            return list(self._results)

    @property
    def init_errors(self) -> list[InitError]:
        with self._cond:
            return list(self._init_errors)

    @property
    def invocations(self) -> list[Invocation]:
        """Events handed out by ``next``, in order."""
        with self._cond:
            return list(self._invocations)

    @property
    def unanswered(self) -> list[str]:
        """Request ids fetched and not (yet) answered, in fetch order."""
        with self._cond:
            return [i.request_id for i in self._invocations if i.request_id in self._pending]

    @property
    def lost(self) -> list[str]:
        """Unanswered request ids whose connection has closed: the runtime went away."""
        with self._cond:
            return [
                i.request_id
                for i in self._invocations
                if i.request_id in self._pending and not self._connections[i.connection].open
            ]

    @property
    def connections(self) -> list[ConnectionInfo]:
        with self._cond:
            return list(self._connections.values())

    @property
    def requests(self) -> list[tuple[str, str, int, int]]:
        """Every request served: (method, path, status, connection)."""
        with self._cond:
            return [(r.method, r.path, r.status, r.connection) for r in self._requests]

    @property
    def errors(self) -> list[BaseException]:
        """Events that could not be encoded (skipped) and server-side faults."""
        with self._cond:
            return list(self._errors)

    @property
    def waiting(self) -> int:
        """``next`` requests blocked now, waiting for an event."""
        with self._cond:
            return self._waiting

    def wait_for(self, n_results: int, timeout: float) -> bool:
        """Wait until at least ``n_results`` answers arrived; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._results) >= n_results, timeout)

    def wait_until(self, predicate: Callable[[], object], timeout: float) -> bool:
        """Wait until ``predicate()`` (re-checked on every request, answer and closed
        connection) is true, e.g. ``api.wait_until(lambda: api.lost, 5)``; False on timeout."""
        with self._cond:
            return bool(self._cond.wait_for(predicate, timeout))

    def wait_idle(self, timeout: float, waiting: int = 1) -> bool:
        """Wait until ``waiting`` runtimes block in ``next`` with nothing to serve them."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._waiting >= waiting and not self._feed.has_event(), timeout
            )
