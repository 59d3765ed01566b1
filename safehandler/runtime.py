"""The layer's entry point: ``_HANDLER=safehandler.runtime.handler``.

The exec wrapper keeps the original handler in ``SAFEHANDLER_ORIGINAL_HANDLER``; ``handler``
here is that original, imported at init by awslambdaric's own loader (so a broken handler fails
with the very error type and message Lambda gives without the layer) and guarded.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from . import recycle
from ._constants import ORIGINAL_HANDLER

__all__: list[str] = []  # ``handler`` is resolved on first lookup, by __getattr__


def _load_original() -> Callable[..., Any]:
    from awslambdaric import bootstrap  # we are inside awslambdaric: it is loaded

    from .guard import engine_of, guard

    name = os.environ.get(ORIGINAL_HANDLER, "")
    # Lambda's own loader: a bad handler raises the FaultException Lambda would raise
    # (Runtime.ImportModuleError, Runtime.HandlerNotFound, ...), which awslambdaric reports
    # as the init error, exactly as without the layer.
    original: Callable[..., Any] = bootstrap._get_handler(name)
    recycle.install_hook()
    return original if engine_of(original) is not None else guard(original)


@functools.cache
def _handler() -> Callable[..., Any]:
    return _load_original()


def __getattr__(name: str) -> Any:
    # ``handler`` is resolved when awslambdaric looks it up, not when this module is imported.
    if name == "handler":
        return _handler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
