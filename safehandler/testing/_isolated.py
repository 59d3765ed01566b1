"""An isolated soak: the in-process soak, run in a child process under Lambda's limits.

Whatever the in-process soak accepts, the child gets, in a pickled spec:

- **the handler** by name when it has one (a string target; a module attribute, found by its
  ``__module__`` and ``__qualname__`` or by looking through the loaded modules, which is how a
  Mangum instance or a Powertools-decorated function is found), with the parent's
  ``sys.path`` so that what the test could import the child can too; pickled by value only
  when it has no name;
- **the events** as the soak would have drawn them, labelled, in order (a list, a file, a
  directory, a callable, an iterator, a Hypothesis strategy: whatever kind, the child
  replays exactly the events the parent drew);
- **the settings**, validated here first, so that a bad one is a ``ConfigError`` before any
  process starts.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import TargetError
from ._bounds import DEFAULT_TIMEOUT
from ._events import Prelabelled, labelled
from ._limits import LAMBDA_FD_LIMIT, fd_limited
from ._report import SoakReport
from ._soak import DEFAULT_INVOCATIONS, check_bounds, soak_policy

__all__ = ["handler_reference", "soak_isolated"]

CHILD = "safehandler.testing._child"


def soak_isolated(
    handler: str | Callable[..., Any],
    *,
    invocations: int = DEFAULT_INVOCATIONS,
    events: Any = None,
    fd_limit: int = LAMBDA_FD_LIMIT,
    memory_mb: int | None = None,
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    fail_fast: bool = False,
    max_seconds: float | None = None,
    wall_timeout: float = 3600,
    name: str | None = None,
    **settings: Any,
) -> SoakReport:
    """Soak ``handler`` in a child process with ``RLIMIT_NOFILE`` at ``fd_limit`` (Lambda's
    1,024 by default) and the function's memory size, so a leak really hits ``EMFILE``."""
    import resource

    check_bounds(invocations=invocations, timeout=timeout, max_seconds=max_seconds)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if fd_limit < 16 or (hard != resource.RLIM_INFINITY and fd_limit > hard):
        raise TargetError(f"fd_limit={fd_limit}: must be in [16, {hard}] (the hard limit)")
    child_env = dict(os.environ if env is None else env)
    if memory_mb is not None:
        child_env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(memory_mb)
    soak_policy(child_env, **settings)  # a bad setting fails here, not in the child
    spec = {
        "handler": handler_reference(handler),
        "name": name or (handler if isinstance(handler, str) else None),
        "events": _portable_events(events, invocations, seed),
        "invocations": invocations,
        "settings": settings,
        "timeout": timeout,
        "fail_fast": fail_fast,
        "max_seconds": max_seconds,
        "sys_path": [entry or os.getcwd() for entry in sys.path],
        "cwd": os.getcwd(),
    }
    with tempfile.TemporaryDirectory(prefix="safehandler-soak-") as scratch:
        out = Path(scratch) / "report.json"
        spec["out"] = str(out)
        spec_path = Path(scratch) / "spec.pickle"
        try:
            spec_path.write_bytes(pickle.dumps(spec))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TargetError(f"the soak cannot be sent to a child process: {exc}") from None
        proc = subprocess.run(
            fd_limited([sys.executable, "-m", CHILD, str(spec_path)], fd_limit),
            env=child_env,
            capture_output=True,
            text=True,
            timeout=wall_timeout,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise TargetError(
                f"the isolated soak failed (exit {proc.returncode}): "
                + (detail[-1] if detail else "no output")
            )
        report = SoakReport.from_dict(json.loads(out.read_text(encoding="utf-8")))
        report.isolated = True
        return report


# -- the handler, by name where it has one ---------------------------------------------


def handler_reference(handler: str | Callable[..., Any]) -> tuple[Any, ...]:
    """How the child finds the handler: ``("target", "module:function")``,
    ``("attribute", module, path, file)`` or ``("pickled", bytes)``."""
    if isinstance(handler, str):
        return ("target", handler)
    found = _by_qualname(handler) or _by_search(handler)
    if found is not None:
        module, path = found
        return ("attribute", module, path, getattr(sys.modules[module], "__file__", None))
    try:
        return ("pickled", pickle.dumps(handler))
    except Exception as exc:  # noqa: BLE001 - any pickling failure says the same
        raise TargetError(
            f"{handler!r} cannot be sent to a child process ({exc}): define it at module "
            "level, or name it as 'module:function'"
        ) from None


def _by_qualname(handler: Any) -> tuple[str, str] | None:
    module = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return None
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return (module, qualname) if target is handler else None


def _by_search(handler: Any) -> tuple[str, str] | None:
    """A module attribute that is the handler: ``handler = Mangum(app)`` in ``app.py``; the
    module that defines it rather than a test module that imported it, where both have it."""
    found = []
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if module_name == "__main__" or not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            if value is handler:
                found.append((module_name, attribute))
    if not found:
        return None
    return min(
        found, key=lambda where: where[0].rpartition(".")[2].startswith(("test", "conftest"))
    )


# -- the events, exactly as the parent would have drawn them ---------------------------


def _portable_events(events: Any, invocations: int, seed: int | None) -> Prelabelled:
    if isinstance(events, (str, os.PathLike)):
        events = os.path.abspath(events)  # (loaded here: the same files, the same errors)
    return Prelabelled(islice(labelled(events, invocations, seed), invocations))
