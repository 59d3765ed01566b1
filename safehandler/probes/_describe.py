"""How a changed global reads in a report: short, redacted, secrets masked by name.

Values are cut to 60 characters after redaction, so that a DSN's password is hidden before
the cut can split it; a path keeps its end.
"""

from __future__ import annotations

import logging
import reprlib
import signal
from types import BuiltinFunctionType, FunctionType, MethodType
from typing import Any

from .._redact import is_secret_name, redact

__all__ = [
    "MISSING",
    "describe",
    "describe_env",
    "describe_handler",
    "describe_logger",
    "describe_path",
    "describe_signal",
    "rebound",
    "shorten",
    "signal_name",
]

_WIDTH = 60  # before and after values in a detail are cut to this
_repr = reprlib.Repr()
_repr.maxlevel = 2
# long enough for redact() to see a whole DSN before the text is cut
_repr.maxstring = _repr.maxother = 2000


class _Missing:
    def __repr__(self) -> str:
        return "(unset)"


MISSING: Any = _Missing()  # the value of a name that is not set


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def shorten(text: str, *, keep_end: bool = False) -> str:
    if len(text) <= _WIDTH:
        return text
    # a path says most at its end: ".../app.log"
    return "..." + text[3 - _WIDTH :] if keep_end else text[: _WIDTH - 3] + "..."


def describe(value: object, name: str = "") -> str:
    """A value in a detail: redacted, at most 60 characters; secrets by name masked."""
    if value is MISSING:
        return "(unset)"
    if isinstance(value, (FunctionType, BuiltinFunctionType, MethodType, type)):
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None) or repr(value)
        text = f"{module}.{qualname}" if module else str(qualname)
    elif name and is_secret_name(name) and value is not None and not callable(value):
        return "***"
    else:
        try:
            text = _repr.repr(value)
        except Exception:  # noqa: BLE001 - describing must not fail
            text = f"<{type(value).__qualname__} object>"
    return shorten(redact(text))


def describe_env(name: str, value: str) -> str:
    return "***" if is_secret_name(name) else shorten(redact(repr(value)))


def describe_handler(handler: logging.Handler) -> str:
    target: object = getattr(handler, "baseFilename", None)
    host, port = getattr(handler, "host", None), getattr(handler, "port", None)
    if target is None and host is not None:
        target = host if port is None else f"{host}:{port}"
    if target is None and isinstance(handler, logging.StreamHandler):
        target = getattr(handler.stream, "name", None)
    if target is None:
        target = getattr(handler, "address", None)
    kind = type(handler).__name__
    return kind if target is None else f"{kind} to {shorten(redact(str(target)), keep_end=True)}"


def describe_logger(name: str) -> str:
    return "the root logger" if name == logging.root.name else f"logger {name!r}"


def describe_signal(handler: object) -> str:
    if handler is None:
        return "(set outside Python)"
    if isinstance(handler, int):
        try:
            return signal.Handlers(handler).name
        except ValueError:
            return str(handler)
    return describe(handler)


def rebound(dotted: str, name: str, old: object, new: object) -> str:
    if old is MISSING:
        return f"{dotted} added: {describe(new, name)}"
    if new is MISSING:
        return f"{dotted} deleted: was {describe(old, name)}"
    return f"{dotted} rebound: {describe(old, name)} -> {describe(new, name)}"


def describe_path(path: str | None) -> str:
    return "(removed)" if path is None else shorten(redact(path))
