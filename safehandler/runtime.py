"""The only module that knows awslambdaric, AWS's runtime client.

Two jobs:

- **Between invocations.** ``install_hook()`` wraps the runtime client's
  ``wait_next_invocation``: awslambdaric's loop posts invocation N's response, then calls it to
  ask for N+1. That gap is the one safe place to exit, so a pending recycle happens there.
  The base client class is patched if it exists, else the concrete one; if neither does, one
  warning and report-only mode. Nothing is decided from a background thread.
- **The layer's entry point.** With ``_HANDLER=safehandler.runtime.handler`` and the original
  in ``SAFEHANDLER_ORIGINAL_HANDLER``, ``handler`` is the original, imported at init by
  awslambdaric's own loader (so a broken handler fails with the very error type and message
  Lambda gives without the layer) and guarded.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import recycle
from ._constants import LAMBDA_RUNTIME_API, LOGGER_NAME, ORIGINAL_HANDLER
from ._imports import when_imported

__all__ = ["install_hook"]

_log = logging.getLogger(LOGGER_NAME)
_CLIENT_CLASSES = ("BaseLambdaRuntimeClient", "LambdaRuntimeClient")


def install_hook() -> None:
    """Recycle between invocations once awslambdaric runs (now, or when it is imported)."""
    if os.environ.get(LAMBDA_RUNTIME_API):
        when_imported("awslambdaric.lambda_runtime_client", _patch_client)


def _patch_client(module: ModuleType) -> None:
    cls = next((getattr(module, n) for n in _CLIENT_CLASSES if hasattr(module, n)), None)
    wait = getattr(cls, "wait_next_invocation", None)
    if cls is None or wait is None:
        _log.warning(
            "safehandler: this awslambdaric has no runtime client class we know; "
            "unhealthy environments are reported, not recycled"
        )
        return
    if getattr(wait, "__safehandler__", False):
        return

    @functools.wraps(wait)
    def wait_next_invocation(self: Any) -> Any:
        # The previous response has been posted: the only safe moment to go.
        if recycle.pending() and recycle.allowed():
            recycle.recycle_now()
        return wait(self)

    wait_next_invocation.__safehandler__ = True  # type: ignore[attr-defined]
    cls.wait_next_invocation = wait_next_invocation


def _load_original() -> Callable[..., Any]:
    from awslambdaric import bootstrap  # we are inside awslambdaric: it is loaded

    from .guard import engine_of, guard

    name = os.environ.get(ORIGINAL_HANDLER, "")
    # Lambda's own loader: a bad handler raises the FaultException Lambda would raise
    # (Runtime.ImportModuleError, Runtime.HandlerNotFound, ...), which awslambdaric reports
    # as the init error, exactly as without the layer.
    original: Callable[..., Any] = bootstrap._get_handler(name)
    install_hook()
    return original if engine_of(original) is not None else guard(original)


@functools.cache
def _handler() -> Callable[..., Any]:
    return _load_original()


def __getattr__(name: str) -> Any:
    # ``handler`` is resolved when awslambdaric looks it up, not when this module is imported.
    if name == "handler":
        return _handler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
