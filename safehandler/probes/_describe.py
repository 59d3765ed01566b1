"""How a changed global reads in a report: short, redacted, secrets masked by name.

Values are cut to 60 characters after redaction, so that a DSN's password is hidden before
the cut can split it; a path keeps its end.
"""

from __future__ import annotations

import collections
import itertools
import reprlib
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

from .._redact import is_secret_name, redact

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    import logging
    from typing import Any

__all__ = [
    "MISSING",
    "describe",
    "describe_env",
    "describe_handler",
    "describe_logger",
    "describe_path",
    "describe_signal",
    "own_attr",
    "rebound",
    "shorten",
    "signal_name",
    "type_name",
]

_WIDTH = 60  # before and after values in a detail are cut to this

# The built-in types whose repr is the interpreter's own: bounded by reprlib's limits and never
# user code. Anything else is named by its type, not asked for its repr (which could be slow,
# hang, or print a secret).
_BUILTIN_REPR = frozenset(
    {
        bool, bytearray, bytes, complex, dict, float, frozenset, int, list, range, set, slice,
        str, tuple, type(None), type(Ellipsis), collections.deque,
    }
)  # fmt: skip


def type_name(value: object) -> str:
    """``<module.Class object>``: read from the type, never from the instance."""
    kind = type(value)
    module = kind.__dict__.get("__module__")
    module = module if isinstance(module, str) and module != "builtins" else None
    qualname = kind.__qualname__
    return f"<{module}.{qualname} object>" if module else f"<{qualname} object>"


class _BuiltinRepr(reprlib.Repr):
    """reprlib for the built-in types only; no sorting (a sort calls the keys' ``__lt__``
    and costs n log n before reprlib cuts to a few items)."""

    def repr1(self, x: Any, level: int) -> str:
        if type(x) not in _BUILTIN_REPR:
            return type_name(x)
        return super().repr1(x, level)

    def repr_dict(self, x: Any, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pairs = [
            f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
            for key, value in itertools.islice(dict.items(x), self.maxdict)
        ]
        return "{" + ", ".join(pairs) + (", ..." if len(x) > self.maxdict else "") + "}"

    def _unsorted(self, x: Any, level: int, left: str, right: str) -> str:
        if not x:
            return f"{type(x).__name__}()"
        if level <= 0:
            return f"{left}...{right}"
        items = [self.repr1(item, level - 1) for item in itertools.islice(x, self.maxset)]
        return left + ", ".join(items) + (", ..." if len(x) > self.maxset else "") + right

    def repr_set(self, x: Any, level: int) -> str:
        return self._unsorted(x, level, "{", "}")

    def repr_frozenset(self, x: Any, level: int) -> str:
        return self._unsorted(x, level, "frozenset({", "})")


_repr = _BuiltinRepr()
_repr.maxlevel = 2
# long enough for redact() to see a whole DSN before the text is cut
_repr.maxstring = _repr.maxother = 2000


class _Missing:
    def __repr__(self) -> str:
        return "(unset)"


MISSING: Any = _Missing()  # the value of a name that is not set


def signal_name(sig: int) -> str:
    import signal  # 1.5 ms of cold start (its enums): loaded when a signal is told

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
    kind = type(value)  # (isinstance() could ask a user __getattribute__ for __class__)
    if kind in _NAMED or issubclass(kind, type):
        text = _qualified(value)
    elif issubclass(kind, ModuleType):  # its repr may ask its loader or its __getattr__
        module_name = object.__getattribute__(value, "__dict__").get("__name__")
        text = f"<module {module_name!r}>" if type(module_name) is str else "<module>"
    elif name and is_secret_name(name) and value is not None and not callable(value):
        return "***"
    else:
        try:
            text = _repr.repr(value)
        except Exception:  # noqa: BLE001 - describing must not fail
            text = type_name(value)
    return shorten(redact(text))


# Named by their module and qualified name, read from the object's own slots: a function's or
# a class's name is data, not code (a metaclass's properties are not asked).
_NAMED = frozenset({FunctionType, BuiltinFunctionType, MethodType, type})


def _qualified(value: Any) -> str:
    if type(value) is MethodType:
        value = value.__func__
    if issubclass(type(value), type):
        module, qualname = value.__dict__.get("__module__"), value.__qualname__
    else:
        module, qualname = value.__module__, value.__qualname__
    if not isinstance(qualname, str):
        return type_name(value)
    return f"{module}.{qualname}" if isinstance(module, str) else qualname


def describe_env(name: str, value: str) -> str:
    return "***" if is_secret_name(name) else shorten(redact(repr(value)))


def own_attr(obj: object, name: str) -> Any:
    """An attribute from the instance's own ``__dict__``: no property, no ``__getattr__``."""
    try:
        namespace = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001 - no __dict__ (slots, a C type): nothing of its own
        return None
    return dict.get(namespace, name) if type(namespace) is dict else None


def _plain_text(value: object) -> str:
    return str(value) if type(value) in (str, int) else describe(value)


def describe_handler(handler: logging.Handler) -> str:
    target: object = own_attr(handler, "baseFilename")
    host, port = own_attr(handler, "host"), own_attr(handler, "port")
    if target is None and host is not None:
        target = host if port is None else f"{_plain_text(host)}:{_plain_text(port)}"
    if target is None:
        stream = own_attr(handler, "stream")
        # the io module's streams name their file in C; another stream keeps it in its dict
        io_stream = type(stream).__module__ in ("_io", "io")
        target = getattr(stream, "name", None) if io_stream else own_attr(stream, "name")
    if target is None:
        target = own_attr(handler, "address")
    kind = type(handler).__name__
    if target is None:
        return kind
    text = target if type(target) is str else describe(target)
    return f"{kind} to {shorten(redact(text), keep_end=True)}"


def describe_logger(name: str) -> str:
    import logging  # 4 ms of cold start: loaded when a logger is told

    return "the root logger" if name == logging.root.name else f"logger {name!r}"


def describe_signal(handler: object) -> str:
    if handler is None:
        return "(set outside Python)"
    if isinstance(handler, int):
        import signal

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
