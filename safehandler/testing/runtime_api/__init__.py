"""A local Lambda Runtime API, to run a handler under AWS's own runtime client.

``LocalRuntimeAPI`` serves the Runtime API (version 2018-06-01) on 127.0.0.1: ``next`` with
the headers Lambda sends, ``response``, ``error``, ``init/error`` (and SnapStart's
``restore/next`` and ``restore/error``), with Lambda's status codes. ``run_runtime`` starts
``python -m awslambdaric module.function`` against it, as Lambda does (optionally under an
exec wrapper and with Lambda's ``RLIMIT_NOFILE``), so a handler runs in the very loop it runs
in on Lambda: the same import, the same error reports, the same process reused invocation
after invocation. ``run_local`` does both for a list of events::

    from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

    with LocalRuntimeAPI([{"n": 1}, {"n": 2}], timeout=3) as api:
        with run_runtime("app.handler", task_root="src", api=api) as runtime:
            assert api.wait_for(2, timeout=30)
    print([r.body for r in api.results])

What this server knows of the runtime: everything that crosses HTTP, per connection.
awslambdaric's native client keeps one connection open for the life of the process, so a
connection is a runtime process here; its pid is found from the socket (Linux ``/proc``).
An event fetched and never answered is in ``unanswered``; once the connection that fetched
it is closed (the runtime died mid-invocation) it is also in ``lost``: count those as
failed invocations, as Lambda does (``Runtime.ExitError``).

Like a frozen Lambda environment, ``next`` blocks while there is no event, until one is
added or the server stops. Nothing here enforces the function timeout: the deadline is only
announced (``Lambda-Runtime-Deadline-Ms``), and the runtime is stopped when the server is.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._process import RuntimeProcess, run_runtime
from ._records import ConnectionInfo, InitError, Invocation, InvocationResult, RuntimeEvent
from ._server import API_VERSION, JOIN_S, MAX_RESPONSE_BYTES, POLL_S, LocalRuntimeAPI

__all__ = [
    "API_VERSION",
    "MAX_RESPONSE_BYTES",
    "ConnectionInfo",
    "InitError",
    "Invocation",
    "InvocationResult",
    "LocalRun",
    "LocalRuntimeAPI",
    "RuntimeEvent",
    "RuntimeProcess",
    "run_local",
    "run_runtime",
]


# -- one call: run events through a handler ---------------------------------------------


@dataclass(frozen=True)
class LocalRun:
    """What ``run_local`` saw."""

    results: list[InvocationResult]
    init_errors: list[InitError]
    unanswered: list[str]
    returncode: int | None  # None: the runtime was still running, and was stopped
    stdout: str
    stderr: str
    timed_out: bool = False
    connections: list[ConnectionInfo] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.timed_out
            and not self.init_errors
            and not self.unanswered
            and all(r.ok for r in self.results)
        )


def run_local(
    handler: str,
    events: Sequence[Any],
    *,
    task_root: str | os.PathLike[str] = ".",
    timeout: float = 3.0,
    wait: float = 60.0,
    env: Mapping[str, str] | None = None,
    wrapper: str | os.PathLike[str] | None = None,
    rlimit_nofile: int | None = None,
    **api_options: Any,
) -> LocalRun:
    """Run ``events`` through ``handler`` under awslambdaric; stop when each is answered or
    lost, when the runtime exits, or after ``wait`` seconds."""
    with LocalRuntimeAPI(list(events), timeout=timeout, close_when_done=True, **api_options) as api:
        proc = run_runtime(
            handler,
            task_root=task_root,
            api=api,
            env=env,
            wrapper=wrapper,
            rlimit_nofile=rlimit_nofile,
        )
        with proc:
            end = time.monotonic() + wait
            timed_out = True
            while time.monotonic() < end:
                if len(api.results) + len(api.lost) >= len(events) or proc.poll() is not None:
                    timed_out = False
                    break
                api.wait_for(len(api.results) + 1, POLL_S)
            if api.lost:  # its connection closed: the runtime is exiting, let it finish
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(JOIN_S)
            returncode = proc.poll()
        return LocalRun(
            results=api.results,
            init_errors=api.init_errors,
            unanswered=api.unanswered,
            returncode=returncode,
            stdout=proc.stdout_text(),
            stderr=proc.stderr_text(),
            timed_out=timed_out,
            connections=api.connections,
        )
