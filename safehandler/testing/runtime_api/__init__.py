"""A local Lambda Runtime API, to run a handler under AWS's own runtime client.

``LocalRuntimeAPI`` serves the Runtime API (version 2018-06-01) on 127.0.0.1: ``next`` with
the headers Lambda sends, ``response``, ``error``, ``init/error`` (and SnapStart's
``restore/next`` and ``restore/error``), with Lambda's status codes. ``run_runtime`` starts
``python -m awslambdaric module.function`` against it, as Lambda does (optionally under an
exec wrapper and with Lambda's ``RLIMIT_NOFILE``), so a handler runs in the very loop it runs
in on Lambda: the same import, the same error reports, the same process reused invocation
after invocation. ``run_local`` does both for a list of events::

    from safehandler.runtime_api import LocalRuntimeAPI, run_runtime

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
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from .._limits import fd_limited
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


# -- running awslambdaric ---------------------------------------------------------------


# Sets RLIMIT_NOFILE, then execs the runtime command: same pid, the limit inherited. Done
# in a launcher rather than preexec_fn because the parent runs the server's threads, and
# preexec_fn is unsafe in a threaded parent.
class RuntimeProcess(subprocess.Popen[bytes]):
    """A runtime started by ``run_runtime``, in its own session (process group).

    As a context manager (and when its ``LocalRuntimeAPI`` stops), the whole group is
    stopped and the process reaped. Output goes to temporary files, which cannot fill up.
    """

    _out: IO[bytes]
    _err: IO[bytes]
    _text: tuple[str, str] | None = None

    def stop(self, grace: float = 0.5) -> int:
        """SIGTERM the group, SIGKILL what is left after ``grace`` seconds; reap; the status."""
        if self._text is not None:  # stopped already
            return self.wait()
        if self.returncode is None:
            self._signal_group(signal.SIGTERM)
            end = time.monotonic() + grace
            while not self._exited() and time.monotonic() < end:
                time.sleep(0.01)
        # Kill the whole group (children of the handler, a wrapper's runtime) before the
        # leader is reaped, while its pid still names this group. (If the caller reaped it
        # already, the group id is still ours while any member lives; empty, ESRCH.)
        self._signal_group(signal.SIGKILL)
        status = self.wait(timeout=10)
        self._close_files()
        return status

    def stdout_text(self) -> str:
        return self._read()[0]

    def stderr_text(self) -> str:
        return self._read()[1]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        super().__exit__(exc_type, value, traceback)

    def _exited(self) -> bool:
        if self.returncode is not None:
            return True
        try:  # WNOWAIT: look without reaping, so the pid stays ours
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _read(self) -> tuple[str, str]:
        if self._text is not None:
            return self._text
        texts = []
        for f in (self._out, self._err):
            f.flush()
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
            f.seek(0, os.SEEK_END)
        return texts[0], texts[1]

    def _close_files(self) -> None:
        if self._text is None:
            self._text = self._read()
            self._out.close()
            self._err.close()


def runtime_env(
    handler: str,
    *,
    task_root: str | os.PathLike[str],
    api: LocalRuntimeAPI,
    env: Mapping[str, str] | None = None,
    wrapper: str | None = None,
) -> dict[str, str]:
    """The environment Lambda gives a runtime, for ``api``'s function."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_LAMBDA_", "LAMBDA_", "_LAMBDA_", "_HANDLER", "_X_AMZN"))
    }
    name = api.function_name
    major, minor = sys.version_info[:2]
    base.update(
        {
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": os.fspath(os.path.abspath(task_root)),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{major}.{minor}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(api.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": api.function_version,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": (
                f"{time.strftime('%Y/%m/%d')}/[{api.function_version}]{uuid.uuid4().hex}"
            ),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": api.region,
            "AWS_DEFAULT_REGION": api.region,
        }
    )
    if wrapper is not None:
        base["AWS_LAMBDA_EXEC_WRAPPER"] = wrapper
    base.update(env or {})
    return base


def run_runtime(
    handler: str,
    *,
    task_root: str | os.PathLike[str],
    api: LocalRuntimeAPI,
    env: Mapping[str, str] | None = None,
    wrapper: str | os.PathLike[str] | None = None,
    rlimit_nofile: int | None = None,
    python: str | None = None,
) -> RuntimeProcess:
    """Start ``python -m awslambdaric handler`` in ``task_root`` against ``api``.

    ``wrapper``: an exec wrapper, run as Lambda runs ``AWS_LAMBDA_EXEC_WRAPPER``: with the
    runtime command as its arguments. ``rlimit_nofile``: soft and hard ``RLIMIT_NOFILE`` of
    the runtime (Lambda's is 1,024). ``env`` is applied last, over Lambda's variables.
    The process is stopped with ``api`` (or leave its ``with`` block, or call ``stop()``).
    """
    argv = [python or sys.executable, "-m", "awslambdaric", handler]
    wrapper_path = None if wrapper is None else os.fspath(wrapper)
    if wrapper_path is not None:
        if not os.access(wrapper_path, os.X_OK):
            raise ValueError(f"exec wrapper {wrapper_path!r} is not an executable file")
        argv = [wrapper_path, *argv]
    if rlimit_nofile is not None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if rlimit_nofile < 1 or (hard != resource.RLIM_INFINITY and rlimit_nofile > hard):
            raise ValueError(f"rlimit_nofile {rlimit_nofile}: not in 1..{hard}")
        argv = fd_limited(argv, rlimit_nofile)
    child_env = runtime_env(handler, task_root=task_root, api=api, env=env, wrapper=wrapper_path)
    # Closed by RuntimeProcess.stop(), which reads them first.
    out = tempfile.TemporaryFile(prefix="safehandler-runtime-out-")  # noqa: SIM115
    err = tempfile.TemporaryFile(prefix="safehandler-runtime-err-")  # noqa: SIM115
    try:
        proc = RuntimeProcess(
            argv,
            cwd=os.fspath(task_root),
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    except BaseException:
        out.close()
        err.close()
        raise
    proc._out, proc._err = out, err
    api._adopt(proc)
    return proc


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
