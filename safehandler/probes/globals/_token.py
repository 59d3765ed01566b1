"""The token a snapshot returns: cheap keys to compare, and copies only of what moved.

Each part of the shared state is a ``Part``: its key (the referents the next snapshot
compares) and its data (the copy ``diff()`` and ``restore()`` read). A part whose key did not
move is the previous token's own object, so a diff skips it by identity.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType

from ..._records import Resource

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from ..._tuple import NamedTuple

__all__ = [
    "Handler",
    "Held",
    "Layout",
    "Part",
    "Snapshot",
    "flatten",
    "identical",
    "new_name_change",
    "part",
    "same",
    "shared_state_unmoved",
]

# the watched stdlib modules: (name, module, the public callables and classes watched)
Layout = tuple[tuple[str, ModuleType, tuple[str, ...]], ...]


class Part(NamedTuple):
    key: list[Any]  # referents: what the next snapshot compares
    data: Any  # the copy diff() and restore() read


class Held(NamedTuple):
    """What a handler function or class holds in one place (``_owned``)."""

    value: Any
    owner: Any  # the _owned.Owner
    name: str  # the attribute's or cell's name ("" for a default or a cache)
    kind: str  # "attribute", "cell", "default", "lru"


class Handler(NamedTuple):
    modules: dict[str, ModuleType]
    namespaces: dict[str, dict[str, Any]]  # copies
    lens: dict[tuple[str, str], int]  # (module, attribute) -> size, for mutable containers
    prints: dict[tuple[str, str], int | None]  # deep: content fingerprints
    contents: dict[tuple[str, str], Any]  # deep: shallow copies, for restore()
    # what the handler's functions and classes hold, by (module, "handler.__defaults__[0]")
    owned: dict[tuple[str, str], Held]
    owners: frozenset[int]  # the ids of those functions and classes


class Snapshot(NamedTuple):
    """The token. Equal only to itself: an unchanged state returns the previous token."""

    values: list[Any]  # referents of the handler's namespaces
    lens: tuple[int, ...]
    prints: tuple[int | None, ...]
    slices: tuple[Any, ...]  # the shared state, one read per slice of the rotation
    taken: int  # the probe's snapshot count when this token was built
    cwd: str | None
    signals: tuple[Any, ...]
    atexit: int | None
    handler: Handler
    builtins: Part  # dict copy
    stdlib: Part  # (the watch layout, the watched values in its order)
    modules: Part  # dict copy of sys.modules
    logging: Part  # logger name -> (logger, tuple of handlers)
    path: Part  # (the sys.path list, tuple copy)
    environ: Part  # dict copy of os.environ

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)


def flatten(layout: Layout) -> Iterator[tuple[str, ModuleType, str]]:
    for module_name, module, names in layout:
        for name in names:
            yield module_name, module, name


def same(a: list[Any], b: list[Any]) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a value whose __eq__ raises is not the one we saw
        return False


def identical(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and not any(map(operator.is_not, a, b))


def part(last: Any, key: list[Any], read: Callable[[], Any]) -> Part:
    """The previous part if its key did not move (``last`` falsy: no previous), else a new one."""
    if last and same(key, last.key):
        return last  # type: ignore[no-any-return]
    return Part(key, read())


_shared_parts = operator.attrgetter("builtins", "stdlib", "modules", "logging", "path", "environ")
_small_reads = operator.attrgetter("cwd", "signals", "atexit")


def shared_state_unmoved(last: Snapshot, token: Snapshot) -> bool:
    """Every shared part is the previous token's own (its key did not move), and the reads
    kept whole in the token are equal."""
    return all(map(operator.is_, _shared_parts(token), _shared_parts(last))) and (
        _small_reads(token) == _small_reads(last)
    )


NEW_NAMES = "(new names)"


def new_name_change(noun: str, key: tuple[str, str], detail: str, invocation: int) -> Resource:
    """A name added to a namespace: grouped with every other name added to it, so that a new
    name per invocation (an environment variable, a ``sys.path`` entry, a global) is one
    growing group, not a group (and a finding) per name; ``key`` still names it, for
    restore()."""
    group = ("global", noun, (key[0], NEW_NAMES))
    return Resource("global", key, noun, detail, None, invocation, group)
