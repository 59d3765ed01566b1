"""The working directory: read, diff and restore."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..._records import WORKING_DIRECTORY, Resource, global_change
from .._describe import describe_path

__all__ = ["diff_cwd", "getcwd", "restore_cwd"]

Wanted = Callable[[tuple[str, str]], bool]


def getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed from under us
        return None


def diff_cwd(was: str | None, now: str | None, invocation: int) -> list[Resource]:
    if was == now:
        return []
    detail = f"changed: {describe_path(was)} -> {describe_path(now)}"
    return [global_change(WORKING_DIRECTORY, (WORKING_DIRECTORY, ""), detail, invocation)]


def restore_cwd(was: str | None, wanted: Wanted) -> list[str]:
    if was is None or getcwd() == was or not wanted((WORKING_DIRECTORY, "")):
        return []
    os.chdir(was)
    return ["working directory"]
