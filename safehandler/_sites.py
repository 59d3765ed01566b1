"""Where a resource was created: the frame walk from an event to the line of user code.

A site names the first frame of the user's code (``app.py:12 in handler``); library frames
between it and the event are folded into ``via`` (``pymysql.connections.Connection.__init__``),
and when that first frame is a helper, the handler line that called it is kept as its caller.
"""

from __future__ import annotations

import functools
import os
from types import FrameType

from ._records import Site

__all__ = [
    "PACKAGE_DIR",
    "caller_is_library",
    "capture_site",
    "is_user_code",
    "library_prefixes",
    "line_site",
]

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def library_prefixes() -> tuple[str, ...]:
    """Where the stdlib, site-packages and safehandler live. Read before the audit hook is
    installed (``_scope.install``): importing sysconfig opens files, and an audit event
    that asked for this while sysconfig was half imported would fail."""
    import sysconfig  # 0.8 ms of cold start: read at the first guard, not at import

    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(PACKAGE_DIR)
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots) + tuple(
        os.path.join(root, "") for root in roots
    )


@functools.lru_cache(maxsize=4096)
def is_user_code(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return not filename.startswith(library_prefixes())


def _qualname(frame: FrameType) -> str:
    code = frame.f_code
    qualname: str | None = getattr(code, "co_qualname", None)  # Python 3.11+
    return qualname if qualname is not None else _method_qualname(frame) or code.co_name


def _method_qualname(frame: FrameType) -> str | None:
    """Before 3.11 a code object knows its name, not its class: find the class whose method it
    is through the ``self`` or ``cls`` it was called with ("ThreadPoolExecutor.submit")."""
    code = frame.f_code
    if not code.co_argcount or code.co_varnames[0] not in ("self", "cls"):
        return None
    first = frame.f_locals.get(code.co_varnames[0])
    for klass in getattr(first if isinstance(first, type) else type(first), "__mro__", ()):
        member = vars(klass).get(code.co_name)
        if getattr(getattr(member, "__func__", member), "__code__", None) is code:
            return f"{klass.__qualname__}.{code.co_name}"
    return None


def _function_name(frame: FrameType) -> str:
    # "test_x.<locals>.handler" reads worse than "handler"; "Handler.handle" stays.
    return _qualname(frame).rpartition("<locals>.")[2]


def capture_site(frame: FrameType | None) -> Site | None:
    """The first user frame at or above ``frame``, with the library call it made as ``via``."""
    innermost: FrameType | None = None
    callee: FrameType | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if is_user_code(filename):
            via = None
            if callee is not None:
                module = callee.f_globals.get("__name__", "?")
                via = f"{module}.{_qualname(callee)}"
            function = _function_name(frame)
            return Site(filename, frame.f_lineno, function, via, _user_caller(frame.f_back))
        if not filename.startswith(PACKAGE_DIR):
            innermost = innermost or frame
            callee = frame
        frame = frame.f_back
    if innermost is None:
        return None
    # Only library frames: name the innermost one rather than nothing.
    return Site(innermost.f_code.co_filename, innermost.f_lineno, _function_name(innermost))


def line_site(frame: FrameType, lineno: int) -> Site:
    """``lineno`` of the user code running in ``frame``, with the handler line that called it."""
    caller = _user_caller(frame.f_back)
    return Site(frame.f_code.co_filename, lineno, _function_name(frame), None, caller)


def _user_caller(frame: FrameType | None) -> tuple[str, int, str] | None:
    """The outermost user frame below the guard: the handler's own line, when the site is a
    helper it called. None when the site is in the handler itself, or off the guard's stack."""
    outermost = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(PACKAGE_DIR):
            return outermost
        if is_user_code(filename):
            outermost = (filename, frame.f_lineno, _function_name(frame))
        frame = frame.f_back
    return None


def caller_is_library(frame: FrameType) -> bool:
    """Whether the code at ``frame`` is a library's (the stdlib, site-packages), not the user's."""
    return not is_user_code(frame.f_code.co_filename)
