"""What is watched: the handler's own modules, and the stdlib modules whose public callables
and classes a monkeypatch would replace."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType

from ..._sites import is_user_code
from ._vendored import vendored_names

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["COMMON_STDLIB", "handler_modules", "is_stdlib_name"]

# The stdlib modules watched in production: what request handling goes through (I/O, network,
# time, randomness, serialisation, processes, threads, logging), where a monkeypatch changes
# every later invocation. Watching every loaded stdlib module costs about 5 ns per namespace
# entry per snapshot, constants included (twice what these cost after `import safehandler`,
# and it grows with every library imported), which deep mode pays.
COMMON_STDLIB = frozenset(
    {
        "asyncio",
        "atexit",
        "base64",
        "concurrent.futures",
        "contextvars",
        "copy",
        "datetime",
        "decimal",
        "email.utils",
        "functools",
        "getpass",
        "gzip",
        "hashlib",
        "hmac",
        "http.client",
        "io",
        "json",
        "locale",
        "logging",
        "logging.handlers",
        "os",
        "os.path",
        "pathlib",
        "pickle",
        "platform",
        "queue",
        "random",
        "re",
        "secrets",
        "select",
        "selectors",
        "shutil",
        "signal",
        "smtplib",
        "socket",
        "sqlite3",
        "ssl",
        "struct",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib.parse",
        "urllib.request",
        "uuid",
        "warnings",
        "zlib",
        "zoneinfo",
    }
)

# os and os.path re-export these; patching them directly is not how anyone monkeypatches.
_SKIP_STDLIB = frozenset({"builtins", "posix", "nt", "ntpath", "posixpath"} - {os.path.__name__})


def is_stdlib_name(name: str) -> bool:
    """A public stdlib module or submodule (``"all"`` mode watches every loaded one)."""
    parts = name.split(".")
    return (
        parts[0] in sys.stdlib_module_names
        and parts[0] not in _SKIP_STDLIB
        and not any(part.startswith("_") for part in parts)
    )


def handler_modules(handler: Callable[..., Any] | None) -> list[str]:
    """The handler's own modules: its module, and the loaded modules of the same top-level
    package or from the same directory (Lambda's task root). Library code is not the
    handler's: its globals are watched as stdlib or not at all; so is a package vendored into
    the task root (``pip install -t .``), known by the metadata pip wrote beside it."""
    if handler is None:
        return []
    name = getattr(_unwrap(handler), "__module__", None)
    module = sys.modules.get(name or "")
    if module is None or name is None:
        return []
    top = name.partition(".")[0]
    where = getattr(module, "__file__", None)
    root = os.path.dirname(os.path.abspath(where)) if where else None
    libraries = _vendored_beside(name, where) if where else frozenset()
    found = [name]
    for other, candidate in list(sys.modules.items()):
        if other == name or not isinstance(candidate, ModuleType):
            continue
        other_top = other.partition(".")[0]
        if other_top != top and other_top in libraries:
            continue  # installed beside the handler (pip install -t .): a library
        path = getattr(candidate, "__file__", None) or ""
        same_package = other.partition(".")[0] == top and top != "safehandler"
        beside = bool(root) and path.startswith(os.path.join(root or "", ""))
        if same_package or (beside and is_user_code(path)):
            found.append(other)
    return found


def _vendored_beside(name: str, where: str) -> frozenset[str]:
    """What the distributions installed in the handler's directory, and in the task root its
    top-level package was imported from, claim as their top-level names."""
    here = os.path.dirname(os.path.abspath(where))
    task_root = here
    if os.path.basename(where).startswith("__init__."):
        task_root = os.path.dirname(task_root)
    for _ in range(name.count(".")):
        task_root = os.path.dirname(task_root)
    return vendored_names(here) | vendored_names(task_root)


def _unwrap(func: Callable[..., Any]) -> Callable[..., Any]:
    """``inspect.unwrap`` without importing inspect (5 ms of cold start): the innermost
    ``__wrapped__`` of a stack of decorators."""
    seen = {id(func)}
    while (inner := getattr(func, "__wrapped__", None)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        func = inner
    return func
