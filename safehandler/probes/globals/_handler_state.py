"""The handler's own module namespaces and the containers in them: read, diff and restore.

A global of the handler's modules is one group per (module, attribute): a lazy initialisation
(set once, then left alone) is one resource in its group, which the tracker's growth rule
tolerates; a second rebinding, or a container that grows invocation after invocation, is
growth. Intended caches (allowed by name or by object) report only their growth, which the
verdicts' streak rule judges.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..._records import ALLOWED_CACHE, MODULE_GLOBAL, Resource, global_change
from .._describe import MISSING, rebound
from ._allow import is_allowed
from ._stdlib import put_attr
from ._token import Handler

__all__ = ["diff_handler", "fingerprint", "is_container", "is_dunder", "read_handler"]

AllowedName = Callable[[str], bool]
Wanted = Callable[[tuple[str, str]], bool]

_DEEP_LIMIT = 10_000  # containers larger than this get no content fingerprint
_CONTAINERS = (dict, list, set, bytearray, collections.deque)
# A subclass that overrides __len__ could run anything: only the built-in lengths are read.
_PLAIN_LEN = frozenset(kind.__len__ for kind in _CONTAINERS)


def is_dunder(name: object) -> bool:
    return not isinstance(name, str) or (name.startswith("__") and name.endswith("__"))


def is_container(value: object) -> bool:
    return isinstance(value, _CONTAINERS) and type(value).__len__ in _PLAIN_LEN


def fingerprint(obj: Any) -> int | None:
    """A hash of the contents (deep mode), or None when too large or not representable."""
    try:
        if len(obj) > _DEEP_LIMIT:
            return None
        if isinstance(obj, dict):
            return hash(tuple(sorted(map(repr, obj.items()))))
        if isinstance(obj, set):
            return hash(tuple(sorted(map(repr, obj))))
        if isinstance(obj, bytearray):
            return hash(bytes(obj))
        return hash(tuple(map(repr, obj)))
    except Exception:  # noqa: BLE001 - a repr that raises: no fingerprint, size only
        return None


def _contents(obj: Any) -> Any:
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, bytearray):
        return bytes(obj)
    return list(obj)


def _put_back(obj: Any, contents: Any) -> None:
    if isinstance(obj, (list, bytearray)):
        obj[:] = contents
    elif isinstance(obj, collections.deque):
        obj.clear()
        obj.extend(contents)
    else:  # dict, set
        obj.clear()
        obj.update(contents)


def read_handler(modules: dict[str, ModuleType], *, deep: bool) -> tuple[Handler, tuple[Any, ...]]:
    """Copies of the namespaces, the sizes (and in deep mode the contents) of the containers
    in them; and the containers, in the order of the sizes."""
    namespaces = {name: dict(vars(module)) for name, module in modules.items()}
    containers = []
    lens: dict[tuple[str, str], int] = {}
    prints: dict[tuple[str, str], int | None] = {}
    contents: dict[tuple[str, str], Any] = {}
    for module_name, namespace in namespaces.items():
        for name, value in namespace.items():
            if is_dunder(name) or not is_container(value):
                continue
            containers.append(value)
            lens[module_name, name] = len(value)
            if deep:
                prints[module_name, name] = printed = fingerprint(value)
                if printed is not None:
                    contents[module_name, name] = _contents(value)
    return Handler(dict(modules), namespaces, lens, prints, contents), tuple(containers)


def diff_handler(
    before: Handler, after: Handler, invocation: int, allowed_name: AllowedName, *, deep: bool
) -> list[Resource]:
    out: list[Resource] = []
    for module_name, now in after.namespaces.items():
        was = before.namespaces.get(module_name)
        if was is None or before.modules.get(module_name) is not after.modules[module_name]:
            continue  # imported (or re-imported) during the invocation: baseline
        for name in sorted(was.keys() | now.keys(), key=str):
            if is_dunder(name):
                continue
            old, new = was.get(name, MISSING), now.get(name, MISSING)
            key = (module_name, name)
            dotted = f"{module_name}.{name}"
            size = (before.lens.get(key), after.lens.get(key))
            if allowed_name(dotted) or is_allowed(old if new is MISSING else new):
                old_size, new_size = size
                if old_size is not None and new_size is not None and new_size > old_size:
                    detail = f"{dotted} grew: {old_size} -> {new_size} items"
                    out.append(global_change(ALLOWED_CACHE, key, detail, invocation))
                continue
            if old is not new:
                detail = rebound(dotted, name, old, new)
            elif size[0] is not None and size[1] is not None and size[0] != size[1]:
                verb = "grew" if size[1] > size[0] else "shrank"
                detail = f"{dotted} {verb}: {size[0]} -> {size[1]} items"
            elif deep and before.prints.get(key) != after.prints.get(key):
                detail = f"{dotted} contents changed: {size[1]} items"
            else:
                continue
            out.append(global_change(MODULE_GLOBAL, key, detail, invocation))
    return out


def restore_handler(before: Handler, wanted: Wanted, allowed_name: AllowedName) -> list[str]:
    done: list[str] = []
    for module_name, module in before.modules.items():
        was = before.namespaces[module_name]
        live = vars(module)
        for name in [name for name in list(live) if name not in was]:
            key = (module_name, name)
            if is_dunder(name) or allowed_name(f"{module_name}.{name}"):
                continue
            if not is_allowed(live.get(name)) and wanted(key):
                put_attr(module, name, MISSING)
                done.append(f"{module_name}.{name} (deleted)")
        for name, value in was.items():
            key = (module_name, name)
            current = live.get(name, MISSING)
            if (
                is_dunder(name)
                or allowed_name(f"{module_name}.{name}")
                or is_allowed(current if current is not MISSING else value)
                or not wanted(key)
            ):
                continue
            if current is not value:
                put_attr(module, name, value)
                done.append(f"{module_name}.{name}")
            copied = before.contents.get(key)
            if copied is not None and (
                len(value) != before.lens[key] or fingerprint(value) != before.prints[key]
            ):
                _put_back(value, copied)
                done.append(f"{module_name}.{name} (contents)")
    return done
