"""``os.environ``: read, diff and restore. The runtime's own variables are not the handler's."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..._records import ENVIRONMENT_VARIABLE, Resource, global_change
from .. import _rotation
from .._describe import describe_env
from ._token import new_name_change

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "RUNTIME_ENV",
    "diff_environ",
    "encoded",
    "environ_data",
    "read_environ",
    "restore_environ",
]

AllowedName = Callable[[str], bool]
Wanted = Callable[[tuple[str, str]], bool]

# Set by the runtime itself between invocations (awslambdaric's X-Ray trace id): not the
# handler's doing, and not a reason to leave the cheap path.
RUNTIME_ENV = frozenset({"_X_AMZN_TRACE_ID", "_LAMBDA_TELEMETRY_LOG_FD"})
_RUNTIME_ENV_KEYS = frozenset(
    getattr(os.environ, "encodekey", lambda name: name)(name) for name in RUNTIME_ENV
)


def encoded(name: str) -> Any:
    """``name`` as a key of ``environ_data()``."""
    return getattr(os.environ, "encodekey", lambda name: name)(name)


def environ_data() -> Any:
    # os.environ keeps its bytes in a plain dict: reading it costs no decoding
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):
        data = dict(os.environ)
    if any(key in data for key in _RUNTIME_ENV_KEYS):
        data = {key: value for key, value in data.items() if key not in _RUNTIME_ENV_KEYS}
    return data


def read_environ() -> list[Any]:
    """What the rotation compares."""
    return _rotation.referents(environ_data())


def diff_environ(
    was: dict[str, str], now: dict[str, str], invocation: int, allowed_name: AllowedName
) -> list[Resource]:
    out: list[Resource] = []
    for name in sorted(was.keys() | now.keys()):
        old, new = was.get(name), now.get(name)
        if old == new or name in RUNTIME_ENV or allowed_name(f"os.environ.{name}"):
            continue
        key = (ENVIRONMENT_VARIABLE, name)
        if old is None:
            detail = f"{name} added: {describe_env(name, new or '')}"
            out.append(new_name_change(ENVIRONMENT_VARIABLE, key, detail, invocation))
            continue
        if new is None:
            detail = f"{name} removed: was {describe_env(name, old)}"
        else:
            detail = f"{name} changed: {describe_env(name, old)} -> {describe_env(name, new)}"
        out.append(global_change(ENVIRONMENT_VARIABLE, key, detail, invocation))
    return out


def restore_environ(was: dict[str, str], wanted: Wanted, allowed_name: AllowedName) -> list[str]:
    # Only what differs is set or unset: no moment with an empty environment.
    done: list[str] = []
    now = dict(os.environ)
    for name in sorted(now.keys() | was.keys()):
        if now.get(name) == was.get(name) or allowed_name(f"os.environ.{name}"):
            continue
        if not wanted((ENVIRONMENT_VARIABLE, name)):
            continue
        if name in was:
            os.environ[name] = was[name]
        else:
            del os.environ[name]
        done.append(f"os.environ[{name!r}]")
    return done
