"""State the handler's functions and classes hold: read, diff and restore.

A function or class defined in a handler module (its code in that module's file) holds state
a module namespace does not show: mutable defaults (``def handler(e, c, _seen=[])``), its own
attributes (``handler.calls``, ``Registry.items``), closure cells (``nonlocal``), and an
unbounded ``functools.lru_cache``'s entries. Each is one group per (module, name), judged as a
module global is: a lazy initialisation is tolerated, growth invocation after invocation is a
leak.

The owners are found when the handler's state is read (at the first snapshot, and when a
snapshot saw it move), never per invocation. Every snapshot then compares the referents of
the owners' dicts and cells with the handler's namespaces (one C call), and the containers
found in them join the handler's containers (their sizes, and the sample/BUDGET fingerprints
of deep mode). Not watched: ``__defaults__`` rebound whole, methods of nested classes, a
bounded lru_cache (its size is its bound), the pure-Python lru_cache (its cache is a closure of
functools' own code).
"""

from __future__ import annotations

import functools
import gc
from types import CellType, FunctionType, ModuleType

from ..._records import (
    MODULE_GLOBAL,
    MUTABLE_DEFAULT,
    Resource,
    global_change,
    plural,
)
from .._describe import MISSING, rebound
from ._allow import is_allowed
from ._handler_state import (
    AllowedName,
    Wanted,
    cache_growth,
    is_container,
    is_dunder,
    moved_detail,
    remove_added,
)
from ._token import Handler, Held, new_name_change

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from ..._tuple import NamedTuple

__all__ = [
    "NO_OWNERS",
    "OWNERS_LIMIT",
    "Owners",
    "diff_owned",
    "find_owners",
    "of_module",
    "read_owned",
    "restore_owned",
]

# Owners (functions, classes, caches) found per read at most: past it, the rest is not watched.
OWNERS_LIMIT = 2048
_LRU = getattr(functools, "_lru_cache_wrapper", None)  # the C implementation's type


class Owner(NamedTuple):
    module: str
    label: str  # "handler", "Registry", "Registry.handle"
    kind: str  # "function", "class", "lru"
    obj: Any  # the function, the class, or the lru wrapper
    held: Any  # the function's __dict__, the class's dict, the lru wrapper's cache dict


class Owners(NamedTuple):
    owners: tuple[Owner, ...]
    sources: tuple[Any, ...]  # dicts and cells: their referents are compared every snapshot
    # what cannot move unless rebound whole (not watched): the default containers, the caches
    fixed: dict[tuple[str, str], Held]
    cells: tuple[tuple[tuple[str, str], CellType, Owner, str], ...]  # key, cell, owner, name


NO_OWNERS = Owners((), (), {}, ())


def find_owners(modules: dict[str, ModuleType]) -> Owners:
    found: dict[int, Owner] = {}
    for module_name, namespace in ((name, vars(module)) for name, module in modules.items()):
        where = namespace.get("__file__")
        for name, value in list(namespace.items()):
            if len(found) >= OWNERS_LIMIT:
                break
            if not is_dunder(name):
                _add(found, module_name, where, name, value, depth=1)
    owners = tuple(found.values())
    sources: list[Any] = []
    fixed: dict[tuple[str, str], Held] = {}
    cells: list[tuple[tuple[str, str], CellType, Owner, str]] = []
    for owner in owners:
        module, label, kind, obj, held = owner
        if kind == "lru":
            fixed[module, f"{label} lru_cache"] = Held(held, owner, "", "lru")
            continue
        sources.append(held)
        if kind != "function":
            continue
        for index, value in enumerate(obj.__defaults__ or ()):
            if is_container(value):
                fixed[module, f"{label}.__defaults__[{index}]"] = Held(value, owner, "", "default")
        for name, value in (obj.__kwdefaults__ or {}).items():
            if is_container(value):
                key = (module, f"{label}.__kwdefaults__[{name!r}]")
                fixed[key] = Held(value, owner, "", "default")
        closure = obj.__closure__ or ()
        sources += closure
        for name, cell in zip(obj.__code__.co_freevars, closure, strict=False):
            cells.append(((module, f"{label} closure {name!r}"), cell, owner, name))
    return Owners(owners, tuple(sources), fixed, tuple(cells))


def _add(
    found: dict[int, Owner], module: str, where: Any, label: str, value: Any, *, depth: int
) -> None:
    kind = type(value)
    if kind is FunctionType:
        if _defined_in(value, module, where) and id(value) not in found:
            found[id(value)] = Owner(module, label, "function", value, value.__dict__)
        # a decorator's wrapper (safehandler's guard, functools.wraps): the user's function
        inner = value.__dict__.get("__wrapped__")
        if inner is not None and inner is not value and depth > 0:
            _add(found, module, where, label, inner, depth=depth - 1)
    elif kind is _LRU and _LRU is not None:
        _add_lru(found, module, where, label, value)
    elif kind in {staticmethod, classmethod} and depth == 0:
        _add(found, module, where, label, value.__func__, depth=0)
    elif issubclass(kind, type) and depth > 0:
        _add_class(found, module, where, label, value)


def _defined_in(func: FunctionType, module: str, where: Any) -> bool:
    # (type checks first: a __module__ set to an object of a user class would run its __eq__)
    name = func.__module__
    return (
        type(name) is str
        and name == module
        and (type(where) is not str or func.__code__.co_filename == where)
    )


def _add_lru(found: dict[int, Owner], module: str, where: Any, label: str, wrapper: Any) -> None:
    own = type.__getattribute__(type(wrapper), "__dict__")["__dict__"].__get__(wrapper)
    inner = own.get("__wrapped__")
    if type(inner) is not FunctionType or not _defined_in(inner, module, where):
        return
    _add(found, module, where, label, inner, depth=0)
    info = _LRU.cache_info(wrapper)  # type: ignore[union-attr]
    if info.maxsize is not None or id(wrapper) in found:
        return  # bounded: it cannot grow past its bound
    # the C wrapper's cache is a dict among its referents (besides its __dict__): its size is
    # the cache's currsize, read by len() with the other containers
    caches = [
        obj
        for obj in gc.get_referents(wrapper)
        if type(obj) is dict and obj is not own and len(obj) == info.currsize
    ]
    if len(caches) == 1:
        found[id(wrapper)] = Owner(module, label, "lru", wrapper, caches[0])


def _add_class(found: dict[int, Owner], module: str, where: Any, label: str, cls: Any) -> None:
    proxy = type.__getattribute__(cls, "__dict__")
    name = proxy.get("__module__")
    if type(name) is not str or name != module or id(cls) in found:
        return
    # the class's own dict (under its mappingproxy), to compare and read like a namespace
    held = gc.get_referents(proxy)
    if len(held) != 1 or type(held[0]) is not dict:
        return
    found[id(cls)] = Owner(module, label, "class", cls, held[0])
    for name, value in list(held[0].items()):
        if not is_dunder(name) and len(found) < OWNERS_LIMIT:
            _add(found, module, where, f"{label}.{name}", value, depth=0)


def of_module(owners: Owners, module: str) -> Owners:
    """The owners of one module (what the witness reads for that module's part)."""
    return Owners(
        tuple(owner for owner in owners.owners if owner.module == module),
        (),
        {key: held for key, held in owners.fixed.items() if key[0] == module},
        tuple(cell for cell in owners.cells if cell[0][0] == module),
    )


def read_owned(owners: Owners) -> dict[tuple[str, str], Held]:
    """What each owner holds now, by (module, name): the values of its attributes and cells
    (a rebinding), its default and cache containers (their growth)."""
    out = dict(owners.fixed)
    for owner in owners.owners:
        held = owner.held
        if owner.kind == "lru" or not held:
            continue
        module, label = owner.module, owner.label
        of_class = owner.kind == "class"
        for name, value in list(held.items()):
            if not is_dunder(name) and not (of_class and _is_sunder(name)):
                out[module, f"{label}.{name}"] = Held(value, owner, name, "attribute")
    for key, cell, owner, name in owners.cells:
        value = _cell(cell)
        if value is not MISSING:
            out[key] = Held(value, owner, name, "cell")
    return out


def _is_sunder(name: str) -> bool:
    # an enum's own bookkeeping (_value2member_map_ fills as Flag combinations are first made)
    return name[:1] == "_" and name[-1:] == "_" and name[1:2] != "_"


def _cell(cell: CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # empty: not bound yet
        return MISSING


def diff_owned(
    before: Handler, after: Handler, invocation: int, allowed_name: AllowedName, *, deep: bool
) -> list[Resource]:
    out: list[Resource] = []
    known = before.owners
    keys = [*after.owned, *(key for key in before.owned if key not in after.owned)]
    for key in keys:
        module, name = key
        if before.modules.get(module) is not after.modules.get(module):
            continue  # imported (or re-imported) during the invocation: baseline
        was, now = before.owned.get(key), after.owned.get(key)
        holder = now or was
        if holder is None or id(holder.owner.obj) not in known:
            continue  # defined during the invocation: baseline
        old = was.value if was is not None else MISSING
        new = now.value if now is not None else MISSING
        dotted = f"{module}.{name}"
        size = (before.lens.get(key), after.lens.get(key))
        noun = MUTABLE_DEFAULT if holder.kind == "default" else MODULE_GLOBAL
        if (
            allowed_name(dotted)
            or allowed_name(f"{module}.{holder.owner.label}")
            or is_allowed(old if new is MISSING else new)
            or is_allowed(holder.owner.obj)
        ):
            out += cache_growth(key, dotted, size, invocation)
            continue
        if old is MISSING:
            detail = rebound(dotted, holder.name, old, new)
            out.append(new_name_change(noun, key, detail, invocation))
            continue
        if old is not new:
            moved: str | None = rebound(dotted, holder.name, old, new)
        else:
            changed = deep and before.prints.get(key) != after.prints.get(key)
            moved = moved_detail(dotted, size, contents=changed)
        if moved is not None:
            out.append(global_change(noun, key, moved, invocation))
    return out


def restore_owned(
    before: Handler, owners: Owners, wanted: Wanted, allowed_name: AllowedName
) -> list[str]:
    """Put back what the invocation added to what the owners hold: a default's, an
    attribute's or a cell's container loses its added items, a new function or class
    attribute is deleted. Left as they are: a rebound attribute or cell (the handler's choice,
    as for a rebound global), and an lru_cache's entries (the cache's own bookkeeping, its
    order and counts, lives in C: only cache_clear() could drop them, and it drops the old
    ones too)."""
    done: list[str] = []
    now = read_owned(owners)
    for key, held in now.items():
        if key in before.owned or held.kind != "attribute" or not wanted(key):
            continue
        owner = held.owner
        if id(owner.obj) not in before.owners or _allowed(key, held, allowed_name):
            continue
        if owner.kind == "class":
            type.__delattr__(owner.obj, held.name)
        else:
            owner.held.pop(held.name, None)
        done.append(f"{key[0]}.{key[1]} (deleted)")
    for key, copied in before.contents.items():
        was = before.owned.get(key)
        current = now.get(key)
        if (
            was is None
            or was.kind == "lru"
            or current is None
            or current.value is not was.value
            or _allowed(key, was, allowed_name)
            or not wanted(key)
        ):
            continue
        removed = remove_added(was.value, copied)
        if removed:
            done.append(f"{key[0]}.{key[1]} ({removed} {plural('added item', removed)} removed)")
    return done


def _allowed(key: tuple[str, str], held: Held, allowed_name: AllowedName) -> bool:
    return (
        allowed_name(f"{key[0]}.{key[1]}")
        or allowed_name(f"{key[0]}.{held.owner.label}")
        or is_allowed(held.value)
        or is_allowed(held.owner.obj)
    )
