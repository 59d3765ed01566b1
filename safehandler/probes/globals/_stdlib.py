"""Builtins, stdlib attributes and ``sys.modules`` entries: read, diff and restore.

A stdlib module is watched by its public callables and classes (a replaced ``json.dumps``).
Most namespaces are compared whole (their referents joined in one call); one that is mostly
constants (socket, ssl, stat) is cheaper read by an itemgetter of its watched names.
"""

from __future__ import annotations

import builtins
import itertools
import operator
import sys
from collections.abc import Callable, Collection
from types import ModuleType

from ..._records import BUILTIN, MODULES_ENTRY, STDLIB_ATTRIBUTE, Resource, global_change
from .._describe import MISSING, describe, rebound
from ._allow import ours
from ._token import Layout, flatten
from ._watched import is_stdlib_name

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "StdlibWatch",
    "diff_modules",
    "diff_namespace",
    "diff_stdlib",
    "put_attr",
    "read_names",
    "rebinding",
    "restore_modules",
    "restore_namespace",
    "restore_stdlib",
]

AllowedName = Callable[[str], bool]
Wanted = Callable[[tuple[str, str]], bool]


class StdlibWatch:
    """The stdlib modules watched, found as they load; each once, whatever its names."""

    def __init__(self, wanted: Collection[str] | None) -> None:
        self._wanted = wanted  # None: every loaded public stdlib module
        self._seen: set[str] = set()
        self._ids: set[int] = set()  # a module under two names (os.path) is watched once
        self._watched: list[tuple[str, ModuleType, tuple[str, ...]]] = []
        self.layout: Layout = ()  # self._watched frozen: stdlib data refers to it
        self.dense: list[dict[str, Any]] = []
        self.sparse: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any], tuple[str, ...]]]
        self.sparse = []

    def _is_watched(self, name: str) -> bool:
        return is_stdlib_name(name) if self._wanted is None else name in self._wanted

    def add_loaded(self, handler_modules: Collection[str]) -> None:
        """Watch the stdlib modules loaded since the last look."""
        for name, module in list(sys.modules.items()):
            if name in self._seen or not self._is_watched(name):
                continue
            self._seen.add(name)
            if name in handler_modules or not isinstance(module, ModuleType):
                continue
            if id(module) in self._ids:
                continue
            self._ids.add(id(module))
            names = tuple(
                sorted(
                    attr
                    for attr, value in list(vars(module).items())
                    if not attr.startswith("_") and callable(value) and not ours(value)
                )
            )
            if names:
                self._watched.append((name, module, names))
                self.layout = tuple(self._watched)
                namespace = vars(module)
                # measured: ~5 ns per namespace entry, against ~12 ns per name and ~150 a call
                if 12 * len(names) + 150 < 5 * len(namespace):
                    read = ("__name__", *names)  # never a single name: always a tuple
                    self.sparse.append((namespace, operator.itemgetter(*read), read))
                else:
                    self.dense.append(namespace)

    def read_sparse(self) -> list[Any]:
        return [read_names(*sparse) for sparse in self.sparse]

    def read(self) -> tuple[Layout, tuple[Any, ...]]:
        values: list[Any] = []
        for _, module, names in self.layout:
            values += map(vars(module).get, names, itertools.repeat(MISSING))
        return self.layout, tuple(values)


def read_names(
    namespace: dict[str, Any], getter: Callable[[dict[str, Any]], Any], names: tuple[str, ...]
) -> Any:
    try:
        return getter(namespace)
    except KeyError:  # a watched name was deleted: the same tuple, with a marker
        return tuple(map(namespace.get, names, itertools.repeat(MISSING)))


def rebinding(
    module_name: str, name: str, old: Any, new: Any, allowed_name: AllowedName
) -> str | None:
    dotted = f"{module_name}.{name}"
    if old is new or name == "_" or ours(new) or allowed_name(dotted):
        return None
    return rebound(dotted, name, old, new)


def put_attr(module: ModuleType, name: str, value: Any) -> None:
    if value is MISSING:
        vars(module).pop(name, None)
    else:
        setattr(module, name, value)


# -- builtins (a namespace compared whole) ---------------------------------------------


def diff_namespace(  # noqa: PLR0917 - one namespace's two copies, and how to name a change
    module_name: str,
    was: dict[str, Any],
    now: dict[str, Any],
    noun: str,
    invocation: int,
    allowed_name: AllowedName,
) -> list[Resource]:
    out: list[Resource] = []
    for name in sorted(was.keys() | now.keys(), key=str):
        old, new = was.get(name, MISSING), now.get(name, MISSING)
        detail = rebinding(module_name, name, old, new, allowed_name)
        if detail is not None:
            out.append(global_change(noun, (module_name, name), detail, invocation))
    return out


def restore_namespace(
    was: dict[str, Any], wanted: Wanted, allowed_name: AllowedName, module: ModuleType = builtins
) -> list[str]:
    done: list[str] = []
    module_name = module.__name__
    live = vars(module)
    for name in sorted(was.keys() | live.keys(), key=str):
        value = was.get(name, MISSING)
        current = live.get(name, MISSING)
        key = (module_name, name)
        if rebinding(module_name, name, value, current, allowed_name) is not None and wanted(key):
            put_attr(module, name, value)
            done.append(f"{module_name}.{name}")
    return done


def diff_builtins(
    was: dict[str, Any], now: dict[str, Any], invocation: int, allowed_name: AllowedName
) -> list[Resource]:
    return diff_namespace("builtins", was, now, BUILTIN, invocation, allowed_name)


# -- stdlib attributes -----------------------------------------------------------------


def diff_stdlib(
    before: tuple[Layout, tuple[Any, ...]],
    after: tuple[Layout, tuple[Any, ...]],
    invocation: int,
    allowed_name: AllowedName,
) -> list[Resource]:
    # Stdlib modules imported during the invocation were appended: compare the common part.
    layout, old_values = before
    new_values = after[1]
    out: list[Resource] = []
    moved = itertools.compress(itertools.count(), map(operator.is_not, old_values, new_values))
    attrs = list(flatten(layout))
    for index in moved:
        module_name, _, name = attrs[index]
        old, new = old_values[index], new_values[index]
        detail = rebinding(module_name, name, old, new, allowed_name)
        if detail is not None:
            out.append(global_change(STDLIB_ATTRIBUTE, (module_name, name), detail, invocation))
    return out


def restore_stdlib(
    before: tuple[Layout, tuple[Any, ...]], wanted: Wanted, allowed_name: AllowedName
) -> list[str]:
    done: list[str] = []
    layout, values = before
    for (module_name, module, name), value in zip(flatten(layout), values, strict=True):
        current = vars(module).get(name, MISSING)
        if rebinding(module_name, name, value, current, allowed_name) is None:
            continue
        if wanted((module_name, name)):
            put_attr(module, name, value)
            done.append(f"{module_name}.{name}")
    return done


# -- sys.modules -----------------------------------------------------------------------


def diff_modules(was: dict[str, Any], now: dict[str, Any], invocation: int) -> list[Resource]:
    out: list[Resource] = []
    for name, module in now.items():
        old = was.get(name)
        if old is None or old is module:
            continue  # a new import (or a removed entry): normal
        detail = f"sys.modules[{name!r}] replaced: {describe(old)} -> {describe(module)}"
        out.append(global_change(MODULES_ENTRY, (MODULES_ENTRY, name), detail, invocation))
    return out


def restore_modules(was: dict[str, Any], wanted: Wanted) -> list[str]:
    done: list[str] = []
    for name, module in was.items():
        current = sys.modules.get(name)
        if current is not None and current is not module and wanted((MODULES_ENTRY, name)):
            sys.modules[name] = module
            done.append(f"sys.modules[{name!r}]")
    return done
