"""An isolated soak: the CLI's soak in a child process, under Lambda's limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import TargetError
from ._bounds import DEFAULT_TIMEOUT
from ._limits import LAMBDA_FD_LIMIT, fd_limited
from ._report import SoakReport
from ._soak import DEFAULT_INVOCATIONS

__all__ = ["soak_isolated"]


def soak_isolated(
    target: str,
    *,
    invocations: int = DEFAULT_INVOCATIONS,
    events: str | os.PathLike[str] | None = None,
    fd_limit: int = LAMBDA_FD_LIMIT,
    memory_mb: int | None = None,
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    fail_fast: bool = False,
    max_seconds: float | None = None,
    wall_timeout: float = 3600,
) -> SoakReport:
    """Soak ``target`` in a child process with ``RLIMIT_NOFILE`` at ``fd_limit`` (Lambda's
    1,024 by default) and the function's memory size, so a leak really hits ``EMFILE``."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and fd_limit > hard:
        raise TargetError(f"--fd-limit {fd_limit}: above this process's hard limit {hard}")

    child_env = dict(os.environ if env is None else env)
    if memory_mb is not None:
        child_env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(memory_mb)
    with tempfile.TemporaryDirectory(prefix="safehandler-soak-") as scratch:
        out = Path(scratch) / "report.json"
        argv = [
            sys.executable,
            "-m",
            "safehandler",
            "soak",
            target,
            "-n",
            str(invocations),
            "--json",
            str(out),
            "--quiet",
        ]
        if events is not None:
            argv += ["--events", os.fspath(events)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        argv += ["--timeout", repr(timeout)]
        if fail_fast:
            argv.append("--fail-fast")
        if max_seconds is not None:
            argv += ["--max-seconds", repr(max_seconds)]
        proc = subprocess.run(
            fd_limited(argv, fd_limit),
            env=child_env,
            capture_output=True,
            text=True,
            timeout=wall_timeout,
            check=False,
        )
        if proc.returncode not in (0, 1) or not out.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise TargetError(
                f"the isolated soak failed (exit {proc.returncode}): "
                + (detail[-1] if detail else "no output")
            )
        return SoakReport.from_dict(json.loads(out.read_text(encoding="utf-8")))
