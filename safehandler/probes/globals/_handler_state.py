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
from itertools import islice
from types import ModuleType

from ..._records import ALLOWED_CACHE, MODULE_GLOBAL, Resource, global_change, plural
from .._describe import MISSING, rebound
from ._allow import is_allowed
from ._stdlib import put_attr
from ._token import Handler, Held, identical, new_name_change

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "BUDGET",
    "SAMPLE",
    "cache_growth",
    "diff_handler",
    "fingerprint",
    "fingerprints",
    "is_container",
    "is_dunder",
    "moved_detail",
    "read_handler",
    "remove_added",
    "sample",
]

AllowedName = Callable[[str], bool]
Wanted = Callable[[tuple[str, str]], bool]

# Deep mode's cost is bounded whatever the size of a global: a container's fingerprint reads at
# most SAMPLE of its items (a dict's first and last keys and values, a list's items at an even
# stride), and a snapshot reads at most BUDGET items over all containers, in a fixed order, so
# the same containers get a fingerprint every time (about 20 us per 1,024 items here).
SAMPLE = 1024
BUDGET = 16 * SAMPLE
_COPY_LIMIT = 10_000  # contents kept for restore() only up to this size
_CONTAINERS = (dict, list, set, bytearray, collections.deque)
# A subclass that overrides __len__ could run anything: only the built-in lengths are read.
_PLAIN_LEN = frozenset(kind.__len__ for kind in _CONTAINERS)


def is_dunder(name: object) -> bool:
    return type(name) is not str or (name[:2] == "__" and name[-2:] == "__")


def is_container(value: object) -> bool:
    # type() and issubclass(), not isinstance(): isinstance may ask a user __getattribute__
    kind = type(value)
    return issubclass(kind, _CONTAINERS) and kind.__len__ in _PLAIN_LEN


def sample(obj: Any) -> list[Any]:
    """At most ``SAMPLE`` of a container's items, read with the built-in type's own methods
    (a subclass's ``__iter__`` or ``items`` is user code)."""
    size = len(obj)
    if issubclass(type(obj), dict):
        if size <= SAMPLE // 2:
            return [*dict.keys(obj), *dict.values(obj)]
        # (each item read is a cache miss on a large dict: the ends' values, not their keys)
        half = SAMPLE // 2
        return [*islice(dict.values(obj), half), *islice(reversed(dict.values(obj)), half)]
    if issubclass(type(obj), list):
        return list.__getitem__(obj, slice(None, None, -(-size // SAMPLE) or 1))
    if issubclass(type(obj), collections.deque):
        if size <= SAMPLE:
            return list(collections.deque.__iter__(obj))
        half = SAMPLE // 2
        return [*islice(collections.deque.__iter__(obj), half), *islice(reversed(obj), half)]
    return list(islice(set.__iter__(obj), SAMPLE))  # a set has no order to stride over


def fingerprint(obj: Any) -> int:
    """A hash of the identities of the sampled items (deep mode): an item replaced, even by an
    equal new object, changes it; no item's ``__eq__``, ``__hash__`` or ``__repr__`` runs.
    A bytearray's bytes are hashed (a stride of them when large)."""
    if issubclass(type(obj), bytearray):
        step = -(-len(obj) // (SAMPLE * 8)) or 1
        return hash(bytes(bytearray.__getitem__(obj, slice(None, None, step))))
    return hash((len(obj), tuple(map(id, sample(obj)))))


def fingerprints(containers: tuple[Any, ...]) -> tuple[int | None, ...]:
    """The containers' fingerprints within the snapshot's budget: those past it (in this fixed
    order) get None, and are watched by their size only."""
    out: list[int | None] = []
    left = BUDGET
    for obj in containers:
        size = len(obj)
        if not size:  # (an empty container, say a mutable default: its size says it all)
            out.append(0)
            continue
        if left <= 0:
            out.append(None)
            continue
        left -= min(size, SAMPLE)
        out.append(fingerprint(obj))
    return tuple(out)


def _contents(obj: Any) -> Any:
    if issubclass(type(obj), dict):
        return list(dict.items(obj))
    if issubclass(type(obj), bytearray):
        return bytes(obj)
    if issubclass(type(obj), list):
        return list.copy(obj)
    if issubclass(type(obj), collections.deque):
        return list(collections.deque.__iter__(obj))
    return list(set.__iter__(obj))


def read_handler(
    modules: dict[str, ModuleType],
    *,
    deep: bool,
    keep_contents: bool = False,
    owned: dict[tuple[str, str], Held] | None = None,
    owners: frozenset[int] = frozenset(),
) -> tuple[Handler, tuple[Any, ...]]:
    """Copies of the namespaces, the sizes (and in deep mode the fingerprints) of the
    containers in them and in ``owned`` (what the handler's functions and classes hold, read
    by ``_owned``), copies of their contents for restore() (deep mode or ``keep_contents``, up
    to 10,000 items each); and the containers, in the order of the sizes."""
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
    owned = owned or {}
    seen = set(map(id, containers))  # a module global that is also a default: counted once
    for key, held in owned.items():
        if is_container(held.value) and id(held.value) not in seen:
            seen.add(id(held.value))
            containers.append(held.value)
            lens[key] = len(held.value)
    if deep:
        prints.update(zip(lens, fingerprints(tuple(containers)), strict=True))
    if deep or keep_contents:
        for key, value in zip(lens, containers, strict=True):
            lru = key in owned and owned[key].kind == "lru"  # (not restored: see _owned)
            if lens[key] <= _COPY_LIMIT and not lru:
                contents[key] = _contents(value)
    handler = Handler(dict(modules), namespaces, lens, prints, contents, owned, owners)
    return handler, tuple(containers)


def diff_handler(
    before: Handler, after: Handler, invocation: int, allowed_name: AllowedName, *, deep: bool
) -> list[Resource]:
    out: list[Resource] = []
    for module_name, now in after.namespaces.items():
        was = before.namespaces.get(module_name)
        if was is None or before.modules.get(module_name) is not after.modules[module_name]:
            continue  # imported (or re-imported) during the invocation: baseline
        for name in _moved(module_name, was, now, before, after, deep=deep):
            old, new = was.get(name, MISSING), now.get(name, MISSING)
            key = (module_name, name)
            dotted = f"{module_name}.{name}"
            size = (before.lens.get(key), after.lens.get(key))
            if allowed_name(dotted) or is_allowed(old if new is MISSING else new):
                out += cache_growth(key, dotted, size, invocation)
                continue
            if old is MISSING:
                # a new name per invocation is one growing group, not a group per name
                detail = _described(dotted, name, old, new, len(out))
                out.append(new_name_change(MODULE_GLOBAL, key, detail, invocation))
                continue
            if old is not new:
                moved: str | None = _described(dotted, name, old, new, len(out))
            else:
                changed = deep and before.prints.get(key) != after.prints.get(key)
                moved = moved_detail(dotted, size, contents=changed)
            if moved is not None:
                out.append(global_change(MODULE_GLOBAL, key, moved, invocation))
    return out


def cache_growth(
    key: tuple[str, str], dotted: str, size: tuple[int | None, int | None], invocation: int
) -> list[Resource]:
    """An intended cache reports only its growth (the verdicts' streak rule judges it)."""
    was, now = size
    if was is None or now is None or now <= was:
        return []
    return [global_change(ALLOWED_CACHE, key, f"{dotted} grew: {was} -> {now} items", invocation)]


def moved_detail(dotted: str, size: tuple[int | None, int | None], *, contents: bool) -> str | None:
    """How a container that was not rebound moved (grew, shrank, its contents changed), or
    None if it did not."""
    was, now = size
    if was is not None and now is not None and was != now:
        return f"{dotted} {'grew' if now > was else 'shrank'}: {was} -> {now} items"
    if contents:
        return f"{dotted} contents changed: {now} items"
    return None


# Describing a value is bounded (reprlib's limits, no user code), and so is the number of
# values described per invocation: past it, a change is named without its values.
DESCRIBED = 256


def _described(dotted: str, name: str, old: Any, new: Any, done: int) -> str:
    if done < DESCRIBED:
        return rebound(dotted, name, old, new)
    verb = "added" if old is MISSING else "deleted" if new is MISSING else "rebound"
    return f"{dotted} {verb}"


def _moved(
    module_name: str,
    was: dict[str, Any],
    now: dict[str, Any],
    before: Handler,
    after: Handler,
    *,
    deep: bool,
) -> list[str]:
    """The names whose value, size or (deep) contents moved, in order: only those are looked
    at, not every name of the namespace."""
    names = {name for name, value in now.items() if was.get(name, MISSING) is not value}
    names.update(name for name in was if name not in now)
    sized = [(before.lens, after.lens)] + ([(before.prints, after.prints)] if deep else [])
    for old_sizes, new_sizes in sized:
        names.update(
            name
            for (module, name), size in new_sizes.items()
            if module == module_name
            and old_sizes.get((module, name), size) != size
            and (module, name) not in after.owned  # (diffed by _owned)
        )
    return sorted((name for name in names if not is_dunder(name)), key=str)


def restore_handler(before: Handler, wanted: Wanted, allowed_name: AllowedName) -> list[str]:
    """Put back what the invocation added, and only that: a new name is deleted, a
    container's added items removed (its keys, its appended tail, its new members). A global
    the invocation rebound keeps its new value (a lazy initialisation, a reconnect, a store
    replaced as ``SESSIONS = {**SESSIONS, sid: u}``: the old value may be closed or stale),
    and an item whose value changed keeps it."""
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
    for key, copied in before.contents.items():
        if key in before.owned:
            continue  # what a function or class holds: _owned.restore_owned
        module_name, name = key
        value = before.namespaces[module_name].get(name, MISSING)
        current = vars(before.modules[module_name]).get(name, MISSING)
        if (
            current is not value  # rebound: the new value is the handler's choice
            or allowed_name(f"{module_name}.{name}")
            or is_allowed(value)
            or not wanted(key)
        ):
            continue
        removed = remove_added(value, copied)
        if removed:
            done.append(f"{module_name}.{name} ({removed} {plural('added item', removed)} removed)")
    return done


def remove_added(obj: Any, copied: Any) -> int:
    """Remove from ``obj`` what it gained since ``copied`` was taken; how many items."""
    kind = type(obj)
    if issubclass(kind, dict):
        kept = {id(key) for key, _ in copied}
        added = [key for key in dict.keys(obj) if id(key) not in kept]
        for key in added:
            dict.__delitem__(obj, key)
        return len(added)
    if issubclass(kind, set):
        kept = set(map(id, copied))
        members = [member for member in set.__iter__(obj) if id(member) not in kept]
        for member in members:
            set.discard(obj, member)
        return len(members)
    return _remove_tail(obj, copied)


def _remove_tail(obj: Any, copied: Any) -> int:
    """A sequence: only a tail appended after the items it had, still in place, is removed."""
    kind = type(obj)
    old = len(copied)
    extra = len(obj) - old
    if extra <= 0:
        return 0
    if issubclass(kind, bytearray):
        if bytes(bytearray.__getitem__(obj, slice(0, old))) != copied:
            return 0
        bytearray.__delitem__(obj, slice(old, None))
        return extra
    is_deque = issubclass(kind, collections.deque)
    if is_deque:
        head = list(islice(collections.deque.__iter__(obj), old))
    else:
        head = list.__getitem__(obj, slice(0, old))
    if not identical(head, copied):
        return 0
    for _ in range(extra if is_deque else 0):
        collections.deque.pop(obj)
    if not is_deque:
        list.__delitem__(obj, slice(old, None))
    return extra
