"""The Runtime API's records: an event to serve, a connection, an invocation and its answer.

Plain values, filled in by the server as requests cross HTTP; ``time.monotonic()`` stamps
say when, the connection and pid say which runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ConnectionInfo", "InitError", "Invocation", "InvocationResult", "RuntimeEvent"]


@dataclass(frozen=True)
class RuntimeEvent:
    """An event with the per-invocation data Lambda sends as ``next`` headers.

    Plain objects added as events are JSON-encoded; ``bytes`` are sent as they are.
    ``timeout`` (seconds) overrides the function timeout for this one deadline.
    """

    payload: Any
    request_id: str | None = None
    client_context: Mapping[str, Any] | None = None
    cognito_identity: Mapping[str, Any] | None = None
    trace_id: str | None = None
    tenant_id: str | None = None
    content_type: str = "application/json"
    timeout: float | None = None


@dataclass
class ConnectionInfo:
    """One TCP connection from a runtime. awslambdaric's native client keeps one per process."""

    seq: int  # 1, 2, ... in the order connections were accepted
    client_port: int
    pid: int | None  # the process holding the client socket, when /proc tells
    opened_at: float  # time.monotonic()
    closed_at: float | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Invocation:
    """An event handed to a runtime by ``next``."""

    request_id: str
    index: int  # position of the event in the stream served, from 0
    event: Any
    deadline_ms: int  # epoch milliseconds, as sent in Lambda-Runtime-Deadline-Ms
    connection: int
    client_port: int
    pid: int | None
    user_agent: str | None
    fetched_at: float  # time.monotonic()


@dataclass(frozen=True)
class InvocationResult:
    """What a runtime answered for one invocation: ``response`` or ``error``."""

    request_id: str
    index: int
    status: Literal["success", "error"]
    body: Any  # parsed JSON; raw bytes when not JSON
    raw: bytes
    content_type: str | None
    error_type: str | None  # error header, else the body's errorType
    headers: Mapping[str, str]
    connection: int  # the connection that answered
    client_port: int
    pid: int | None
    user_agent: str | None
    fetched_at: float  # time.monotonic()
    answered_at: float

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def header(self, name: str) -> str | None:
        """A request header of the answer, by case-insensitive name."""
        return _header(self.headers, name)

    @property
    def duration(self) -> float:
        """Seconds from ``next`` returning the event to the answer arriving."""
        return self.answered_at - self.fetched_at


@dataclass(frozen=True)
class InitError:
    """An ``init/error`` (or SnapStart ``restore/error``) report."""

    error_type: str | None  # error header, else the body's errorType
    body: Any
    raw: bytes
    headers: Mapping[str, str]
    phase: Literal["init", "restore"]
    connection: int
    client_port: int
    pid: int | None
    user_agent: str | None
    at: float  # time.monotonic()

    def header(self, name: str) -> str | None:
        """A request header of the report, by case-insensitive name."""
        return _header(self.headers, name)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), None)
