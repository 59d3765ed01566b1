"""One call: run a list of events through a handler under awslambdaric, and say what happened."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._process import run_runtime
from ._records import ConnectionInfo, InitError, InvocationResult
from ._routes import POLL_S
from ._server import JOIN_S, LocalRuntimeAPI

__all__ = ["LocalRun", "run_local"]


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
