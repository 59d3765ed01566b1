"""The layer's entry point: ``_HANDLER=safehandler.runtime.handler``.

The exec wrapper keeps the original handler in ``SAFEHANDLER_ORIGINAL_HANDLER``; ``handler``
here is that original, imported when awslambdaric imports this module, by awslambdaric's own
loader, and guarded.

Fidelity: the original is loaded while this module is imported (not on attribute lookup), so
whatever the user's module raises leaves ``importlib.import_module("safehandler.runtime")``
as it would have left the import of the user's module: awslambdaric's loader turns it into
the very ``errorType`` and ``errorMessage`` Lambda gives without the layer. (A lookup through
a module ``__getattr__`` made an ``AttributeError`` raised by the user's import read
"Handler 'handler' missing on module 'safehandler.runtime'".)

Fail open: what safehandler cannot guard (a non-callable object, a generator function, a
fault of safehandler's own) is handed to the runtime as it is, and Lambda reports what it
reports without the layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import recycle
from ._constants import ORIGINAL_HANDLER, VERSION
from ._warn import error
from .report import log_layer_active

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__: list[str] = []  # ``handler`` exists once the layer's wrapper named the original


def _load_original(name: str) -> Any:
    from awslambdaric import bootstrap  # we are inside awslambdaric: it is loaded

    # Lambda's own loader: a bad handler raises the FaultException Lambda would raise
    # (Runtime.ImportModuleError, Runtime.HandlerNotFound, Runtime.UserCodeSyntaxError), and
    # anything else the user's module raises passes through untouched.
    original = bootstrap._get_handler(name)
    return guarded_or_as_is(original)


def guarded_or_as_is(original: Any) -> Any:
    """``original`` guarded, or as it is when it cannot be (never an error of ours)."""
    if not callable(original):
        return original  # awslambdaric calls it and reports the TypeError, as without us
    try:
        from .guard import engine_of, guard

        if engine_of(original) is not None:
            recycle.install_hook()
            return original  # guarded in code already: one engine, the user's settings
        guarded: Callable[..., Any] = guard(original)
        recycle.install_hook()
        engine = engine_of(guarded)
        if engine is not None:
            settings = engine.policy.to_env()
            log_layer_active(VERSION, os.environ.get(ORIGINAL_HANDLER, ""), settings)
        return guarded
    except Exception as exc:  # noqa: BLE001 - fail open: the function runs unguarded
        error("safehandler: the handler runs unguarded: %s: %s", type(exc).__name__, exc)
        return original


if os.environ.get(ORIGINAL_HANDLER):
    handler = _load_original(os.environ[ORIGINAL_HANDLER])
