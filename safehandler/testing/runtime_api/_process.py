"""Runtime processes: ``python -m awslambdaric`` started against a local API, and stopped.

``run_runtime`` gives the process the environment Lambda gives a runtime (``runtime_env``),
optionally an exec wrapper and Lambda's ``RLIMIT_NOFILE``; ``RuntimeProcess`` stops its whole
process group and keeps what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import IO

from .._limits import fd_limited
from ._managed import managed_runtime_command
from ._server import LocalRuntimeAPI

__all__ = ["RuntimeProcess", "run_runtime", "runtime_env"]


class RuntimeProcess(subprocess.Popen[bytes]):
    """A runtime started by ``run_runtime``, in its own session (process group).

    As a context manager (and when its ``LocalRuntimeAPI`` stops), the whole group is
    stopped and the process reaped. Output goes to temporary files, which cannot fill up.
    """

    _out: IO[bytes]
    _err: IO[bytes]
    _text: tuple[str, str] | None = None
    _scratch: str | None = None  # an emulated /var/runtime, removed once stopped

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
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)


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
    opt: str | os.PathLike[str] | None = None,
) -> RuntimeProcess:
    """Start ``python -m awslambdaric handler`` in ``task_root`` against ``api``.

    ``wrapper``: an exec wrapper, run as Lambda runs ``AWS_LAMBDA_EXEC_WRAPPER``: with the
    runtime command as its arguments. ``rlimit_nofile``: soft and hard ``RLIMIT_NOFILE`` of
    the runtime (Lambda's is 1,024). ``env`` is applied last, over Lambda's variables.
    ``opt``: run the managed runtime's command instead, an emulated ``/var/runtime/bootstrap.py``
    that builds ``sys.path`` as Lambda's does, with ``opt`` as ``/opt`` (the layers, merged).
    The process is stopped with ``api`` (or leave its ``with`` block, or call ``stop()``).
    """
    wrapper_path = None if wrapper is None else os.fspath(wrapper)
    if wrapper_path is not None and not os.access(wrapper_path, os.X_OK):
        raise ValueError(f"exec wrapper {wrapper_path!r} is not an executable file")
    argv = [python or sys.executable, "-m", "awslambdaric", handler]
    scratch = None
    if opt is not None:
        argv, runtime_dir = managed_runtime_command(opt, python)
        scratch = os.fspath(runtime_dir)
    if wrapper_path is not None:
        argv = [wrapper_path, *argv]
    if rlimit_nofile is not None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if rlimit_nofile < 1 or (hard != resource.RLIM_INFINITY and rlimit_nofile > hard):
            raise ValueError(f"rlimit_nofile {rlimit_nofile}: not in 1..{hard}")
        # A launcher sets the limit and execs the command (same pid, limit inherited):
        # preexec_fn would be unsafe here, this parent runs the server's threads.
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
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    proc._out, proc._err, proc._scratch = out, err, scratch
    api._adopt(proc)
    return proc
