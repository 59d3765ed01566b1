"""The globals probe: the units of global state composed behind the probe protocol.

The token is cheap. The values of the watched namespaces come out of ``gc.get_referents``
and are compared with the previous token's with ``==``, which passes identical objects
without calling their ``__eq__``. Copies of the watched state are taken only when something
moved, part by part, and a part that did not move is shared with the previous token: in the
steady state ``snapshot()`` returns the previous token itself, so the engine's
``after == before`` is an identity test.

The handler's own namespaces are compared by every snapshot. The shared state (everything
else) is dealt into ``every`` slices of about equal cost, and a snapshot compares one slice,
in turn: with ``every=8`` a monkeypatch is seen within 8 invocations, for an eighth of the
cost, and its report says in which invocations it was made. Any change found builds a whole
new token, which compares everything.
"""

from __future__ import annotations

import builtins
import collections
import functools
import os
import sys
from collections.abc import Callable, Collection, Hashable, Iterable
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

from ..._records import (
    ENVIRONMENT_VARIABLE,
    HANDLER_STATE_NOUNS,
    LOGGING_HANDLER,
    MODULES_ENTRY,
    NO_CHANGE,
    PATH_ENTRY,
    SIGNAL_HANDLER,
    WORKING_DIRECTORY,
    Creation,
    Delta,
    Resource,
)
from ..._scope import Scope
from .. import _rotation
from .._describe import signal_name
from .._protocol import Probe
from .._rotation import Rotation
from . import _atexit, _cwd, _environ, _handler_state, _logging, _owned, _path, _signals, _stdlib
from ._token import Handler, Part, Snapshot, identical, part, shared_state_unmoved
from ._watched import COMMON_STDLIB
from ._witness import Move, View, Witness, changed_at

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, Literal

    from ...verdicts import Verdict

__all__ = ["GlobalsProbe"]

# The witness (see _witness): after a change without a line, its part is traced through this
# many invocations; strict tests and soaks trace every part through the first ones; lines are
# kept and sought for this many groups in a probe's life.
_WATCH_AFTER = 3
_SURVEYED = 2
_GROUPS = 32

# Shared state a handler may set once on purpose (a chdir into its data): restored only when
# the change repeats in another invocation.
_ONCE_IS_DELIBERATE = frozenset({WORKING_DIRECTORY})


def _matcher(allow: list[str]) -> Callable[[str], object] | None:
    """One regex of the shell patterns, or None when there are none (and no ``re`` loaded:
    3 ms of cold start)."""
    if not allow:
        return None
    import fnmatch
    import re

    return re.compile("|".join(fnmatch.translate(pattern) for pattern in allow)).match


class GlobalsProbe(Probe):
    """Fingerprints global state cheaply; describes and restores it only when it moved.

    Not ``holding``: a change always moves the token. Its state carries over: nothing runs
    between invocations but what the handler left running, so the token after one invocation
    is the token before the next, and a dear second snapshot is saved.
    """

    name = "globals"
    carries_over = True

    def __init__(
        self,
        modules: Iterable[str],
        *,
        allow: Iterable[str] = (),
        deep: bool = False,
        stdlib: Iterable[str] | Literal["all"] | None = None,
        every: int = 1,
        keep_contents: bool = False,
        survey: bool = False,
    ) -> None:
        """``stdlib``: the stdlib module names whose public callables and classes are watched
        (once loaded), or ``"all"``: every loaded public stdlib module and submodule. The
        default is ``"all"`` in deep mode and ``COMMON_STDLIB`` otherwise (cost: see there).

        ``every``: the shared state (everything but the handler's modules) is split into this
        many slices of about equal cost, and each snapshot checks one of them, in turn: a
        change there is seen within ``every`` snapshots instead of at once, for a fraction of
        the cost. The handler's own globals are checked by every snapshot.

        ``keep_contents``: copy the handler's containers' contents (as deep mode does) so that
        ``restore()`` can remove what an invocation added (isolation="restore").

        ``survey``: trace the first invocations line by line for every part of the state, so
        that a change made once is named at its line too (strict tests, soaks; see
        ``_witness``). Otherwise a change without a line has its part traced in the next
        invocations, where it is named if it is made again.
        """
        self.module_names = tuple(dict.fromkeys(modules))
        if stdlib is None:
            stdlib = "all" if deep else COMMON_STDLIB
        self._allow = _matcher(list(allow))
        self.deep = deep
        self._keep_contents = keep_contents
        self._last: Snapshot | None = None
        self._taken = 0  # snapshots taken
        self._rotation = Rotation(every)  # the shared state, a slice per snapshot
        # what the last diff saw, for act(): the token before it, and the changes
        self._acted_on: tuple[Snapshot, list[Resource]] | None = None
        self._atexit_seen: list[Creation] = []  # registrations not yet counted
        self._signals = _signals.catchable_signals()
        self._handler_modules: dict[str, ModuleType] = {}
        self._handler_dicts: tuple[Any, ...] = ()  # the namespaces, the owners' dicts and cells
        self._owners = _owned.NO_OWNERS  # the handler's functions and classes (see _owned)
        self._owners_for: list[Any] = []  # the namespaces' referents they were found in
        self._by_identity = False  # see snapshot()
        self._containers: tuple[Any, ...] = ()
        self._stdlib = _stdlib.StdlibWatch(None if stdlib == "all" else frozenset(stdlib))
        self._log_sources: tuple[Any, ...] = ()
        self._witness = Witness()  # the lines that made changes no site came with
        self._lines: dict[Hashable, Any] = {}  # group -> the line of its last change seen
        self._sought: set[Hashable] = set()  # groups whose part was watched for a line
        self._traced = 0  # the snapshot after the last traced invocation
        self._signal_names: tuple[str, ...] = ()
        self._surveying = survey
        self._resolve()

    # -- what is watched --------------------------------------------------------------

    def _resolve(self) -> None:
        """Find the handler's modules and the stdlib modules loaded since the last look."""
        found = {}
        for name in self.module_names:
            module = sys.modules.get(name)
            if isinstance(module, ModuleType):
                found[name] = module
        self._handler_modules = found
        self._handler_dicts = (*map(vars, found.values()), *self._owners.sources)
        self._stdlib.add_loaded(found)

    def _deal_shared_state(self) -> bool:
        """Share the shared state out into the rotation's slices, when its layout changed;
        say whether it did."""
        watch = self._stdlib
        # (the slices hold the old logging sources: their ids cannot be reused meanwhile)
        layout = (len(watch.dense), len(watch.sparse), *map(id, self._log_sources))
        sources = (vars(builtins), *watch.dense, sys.modules, *self._log_sources)
        # costs in container entries (about 5 ns each): a system call is about 100 of them, a
        # signal handler read 6, a stdlib attribute read by name 3
        readers: list[tuple[int, Callable[[], Any]]] = [
            (len(os.environ), _environ.read_environ),
            (len(sys.path), _path.read_path),
            (100, _cwd.getcwd),
            (6 * len(self._signals), self._read_signals),
            (10, _atexit.ncallbacks),
        ]
        readers += [
            (3 * len(names), functools.partial(_stdlib.read_names, namespace, getter, names))
            for namespace, getter, names in watch.sparse
        ]
        return self._rotation.deal(layout, sources, readers)

    def _read_signals(self) -> tuple[Any, ...]:
        return _signals.read_signals(self._signals)

    @property
    def every(self) -> int:
        """Snapshots over which the shared state comes round once."""
        return self._rotation.every

    def _is_allowed_name(self, dotted: str) -> bool:
        return self._allow is not None and self._allow(dotted) is not None

    # -- the probe protocol -------------------------------------------------------------

    def _handler_unchanged(self, last: Snapshot) -> bool:
        return tuple(map(len, self._containers)) == last.lens and (
            not self.deep or _handler_state.fingerprints(self._containers) == last.prints
        )

    # The handler's globals are compared with the last token's in one expression, inlined in
    # snapshot() and catch_up() (they run on every invocation): ``==`` on the two lists is
    # C's identity test for as long as nothing was rebound (it calls nothing for an identical
    # pair); once a global was rebound to or from an object whose comparison could run user
    # code or walk a container (_plain_rebindings), by identity only from then on.

    def snapshot(self) -> Snapshot:
        if self._witness.active:
            self._witness.end()  # (after an invocation: its tracing ends before it is read)
            self._traced = self._taken + 1
        self._taken += 1
        last = self._last
        if last is not None:
            try:
                values = _rotation.referents(*self._handler_dicts)
                if (
                    (identical(values, last.values) if self._by_identity else values == last.values)
                    and tuple(map(len, self._containers)) == last.lens
                    and (
                        not self.deep
                        or _handler_state.fingerprints(self._containers) == last.prints
                    )
                    and self._rotation.unchanged(last.slices)
                ):
                    return last
            except Exception:  # noqa: BLE001,S110 - a value whose __eq__ raises has changed
                pass
        self._last = self._refresh(last)
        if last is None and self._surveying:  # the baseline, before the first invocation
            self._survey()
            self._witness.begin()
        return self._last

    def catch_up(self, last: Snapshot) -> Snapshot:
        """Before an invocation: take in what the handler's globals became since the last one
        (a loop variable of the script that calls the handler), so that only changes made
        during an invocation count. The shared state is not looked at here: a change the
        rotation has yet to see stays the invocation's that made it."""
        if self._witness.active:
            self._witness.begin()
        try:
            values = _rotation.referents(*self._handler_dicts)
            if (
                (identical(values, last.values) if self._by_identity else values == last.values)
                and tuple(map(len, self._containers)) == last.lens
                and (not self.deep or _handler_state.fingerprints(self._containers) == last.prints)
            ):
                return last
            token = self._refresh_handler(last, values)
        except Exception:  # noqa: BLE001 - fail open: the last state, as before
            return last
        self._last = token
        return token

    def diff(
        self,
        before: Snapshot | None,
        after: Snapshot,
        scope: Scope,
        invocation: int,
    ) -> Delta:
        # registrations are recorded as they happen; the count may be read invocations later
        self._atexit_seen += [c for c in scope.creations if c.kind == "atexit"]
        if before is None or before is after:  # (None: the first look is the baseline)
            return NO_CHANGE
        allowed = self._is_allowed_name
        added: list[Resource] = []
        if before.handler is not after.handler:
            added += _handler_state.diff_handler(
                before.handler, after.handler, invocation, allowed, deep=self.deep
            )
            added += _owned.diff_owned(
                before.handler, after.handler, invocation, allowed, deep=self.deep
            )
        if before.builtins is not after.builtins:
            added += _stdlib.diff_builtins(
                before.builtins.data, after.builtins.data, invocation, allowed
            )
        if before.stdlib is not after.stdlib:
            added += _stdlib.diff_stdlib(before.stdlib.data, after.stdlib.data, invocation, allowed)
        if before.modules is not after.modules:
            added += _stdlib.diff_modules(before.modules.data, after.modules.data, invocation)
        if before.environ is not after.environ:
            added += _environ.diff_environ(
                before.environ.data, after.environ.data, invocation, allowed
            )
        if before.path is not after.path:
            added += _path.diff_path(before.path.data[1], after.path.data[1], invocation)
        if before.logging is not after.logging:
            added += _logging.diff_logging(before.logging.data, after.logging.data, invocation)
        added += _cwd.diff_cwd(before.cwd, after.cwd, invocation)
        if before.signals != after.signals:
            added += _signals.diff_signals(self._signals, before.signals, after.signals, invocation)
        if before.atexit != after.atexit or self._atexit_seen:
            added += _atexit.diff_atexit(before.atexit, after.atexit, invocation, self._atexit_seen)
            self._atexit_seen = []
        self._name_lines(added, self._witness.moves if self._traced == after.taken else {})
        self._date_shared_changes(added, min(after.taken - before.taken, self.every), invocation)
        self._acted_on = (before, added) if added else None
        return Delta(added, []) if added else NO_CHANGE

    def act(self, verdict: Verdict) -> list[Resource]:
        """Put back the changes the verdict says to restore (a change released nothing)."""
        acted_on, self._acted_on = self._acted_on, None
        if acted_on is None:
            return []
        before, added = acted_on
        wanted = {
            res.key
            for res in added
            if verdict.restores(res)
            and (res.noun not in _ONCE_IS_DELIBERATE or verdict.repeated(res))
        }
        if wanted and self.restore(before, wanted):
            self._last = self._refresh(self._last)
        return []

    def _name_lines(self, added: list[Resource], moves: dict[Hashable, list[Move]]) -> None:
        """A change without a site gets the line the witness saw make it in this invocation,
        or the line it saw make its group's last change; else its part is watched in the next
        invocations (see ``_witness``)."""
        for res in added:
            if res.site is not None or not isinstance(res.key, tuple):
                continue
            part_name, name = res.key
            if part_name == ENVIRONMENT_VARIABLE:
                name = _environ.encoded(name)
            site = changed_at(moves[part_name], name) if part_name in moves else None
            if site is not None:
                if res.group in self._lines or len(self._lines) < _GROUPS:
                    self._lines[res.group] = site
            else:
                site = self._lines.get(res.group)
            res.site = site
            if site is None and res.group not in self._sought and len(self._sought) < _GROUPS:
                self._sought.add(res.group)
                self._watch(part_name, _WATCH_AFTER)

    def _watch(self, part_name: str, invocations: int) -> None:
        part = self._part(part_name)
        if part is not None:
            self._witness.watch(part_name, part, invocations)

    def _part(self, part_name: str) -> View | None:
        """How the witness looks at one part of the state: a namespace, or a kind of shared
        state (identities, sizes and strings, so that comparing runs no user code)."""
        shared = _SHARED_PARTS.get(part_name)
        if shared is not None:
            return shared(self)
        module = sys.modules.get(part_name)
        if module is None:
            return None
        namespace = vars(module)
        if part_name in self._handler_modules:  # small, and the sizes of containers count
            owned = _owned.of_module(self._owners, part_name)
            return View(functools.partial(_handler_reading, namespace, owned))
        return View(
            lambda: _by_name(namespace, id),
            lambda: _rotation.referents(namespace),
        )

    def _survey(self) -> None:
        """Strict tests and soaks: every part watched from the first invocation, so that a
        change made once has its line too."""
        names = [*_SHARED_PARTS, "builtins", *self._handler_modules]
        names += [name for name, _, _ in self._stdlib.layout]
        for name in names:
            self._watch(name, _SURVEYED)

    def _signal_reading(self) -> dict[str, int]:
        if len(self._signal_names) != len(self._signals):
            self._signal_names = tuple(map(signal_name, self._signals))
        return dict(zip(self._signal_names, map(id, self._read_signals()), strict=True))

    def _date_shared_changes(self, added: list[Resource], span: int, invocation: int) -> None:
        """The rotation may see a shared change late: say in which invocations it was made."""
        if span <= 1:
            return
        since = max(invocation - span + 1, 1)
        for res in added:
            if res.noun not in HANDLER_STATE_NOUNS:
                res.detail += (
                    f" (made in invocation {since} to {invocation}: the shared state is "
                    f"checked in turn over {self.every} invocations)"
                )

    # -- putting it back ----------------------------------------------------------------

    def restore(self, before: Snapshot, only: Collection[Hashable] | None = None) -> list[str]:
        """Put the watched state back as it was when ``before`` was taken; say what was put back.

        Left alone: allowed names and objects (they are meant to persist), safehandler's own
        wrappers, container contents unless deep mode copied them, atexit registrations (they
        cannot be undone portably), signal handlers outside the main thread. ``only`` limits
        the restore to these resource keys (say, the groups the tracker judged leaking), so
        that a lazily initialised global keeps its value and is not re-created per invocation.
        """

        def wanted(key: tuple[str, str]) -> bool:
            return only is None or key in only

        allowed = self._is_allowed_name
        done: list[str] = []
        done += _handler_state.restore_handler(before.handler, wanted, allowed)
        done += _owned.restore_owned(before.handler, self._owners, wanted, allowed)
        done += _stdlib.restore_namespace(before.builtins.data, wanted, allowed)
        done += _stdlib.restore_stdlib(before.stdlib.data, wanted, allowed)
        done += _stdlib.restore_modules(before.modules.data, wanted)
        done += _environ.restore_environ(before.environ.data, wanted, allowed)
        original, entries = before.path.data
        done += _path.restore_path(original, entries, wanted)
        done += _logging.restore_logging(before.logging.data, wanted)
        done += _cwd.restore_cwd(before.cwd, wanted)
        done += _signals.restore_signals(self._signals, before.signals, wanted)
        return done

    # -- building a token (only when something moved) ----------------------------------

    def _refresh(self, last: Snapshot | None) -> Snapshot:
        referents = _rotation.referents
        modules = part(last and last.modules, referents(sys.modules), self._read_modules)
        values = referents(*self._handler_dicts)
        if last is not None and not self._by_identity:
            self._by_identity = not _plain_rebindings(values, last.values)
        if last is not None and identical(values, last.values) and self._handler_unchanged(last):
            handler, lens, prints = last.handler, last.lens, last.prints
        else:
            # read once: a content fingerprint of a large container is dear (deep mode)
            handler, values = self._read_handler()
            lens = tuple(handler.lens.values())  # in the order of self._containers
            prints = tuple(handler.prints.values())
        builtins_part = part(
            last and last.builtins, referents(vars(builtins)), lambda: dict(vars(builtins))
        )
        watch = self._stdlib
        stdlib = part(
            last and last.stdlib, [*referents(*watch.dense), *watch.read_sparse()], watch.read
        )
        logging_part = part(
            last and self._log_sources and last.logging,
            referents(*self._log_sources),
            self._read_logging,
        )
        if logging_part is not (last and last.logging):  # sources changed: key them anew
            logging_part = Part(referents(*self._log_sources), logging_part.data)
        path_list = sys.path
        path = part(
            last and last.path.data[0] is path_list and last.path,
            referents(path_list),
            lambda: (path_list, tuple(path_list)),
        )
        environ = part(
            last and last.environ, referents(_environ.environ_data()), lambda: dict(os.environ)
        )
        dealt = self._deal_shared_state()
        token = Snapshot(
            values=values,
            lens=lens,
            prints=prints,
            slices=(),
            taken=self._taken,
            cwd=_cwd.getcwd(),
            signals=self._read_signals(),
            atexit=_atexit.ncallbacks(),
            handler=handler,
            builtins=builtins_part,
            stdlib=stdlib,
            modules=modules,
            logging=logging_part,
            path=path,
            environ=environ,
        )
        # The parts above read the whole shared state: when none of it moved (a leak in the
        # handler's own globals), the slices read as before, and are not read again.
        if last is not None and not dealt and shared_state_unmoved(last, token):
            return token._replace(slices=last.slices)
        return token._replace(slices=self._rotation.read_all())

    def _refresh_handler(self, last: Snapshot, values: list[Any]) -> Snapshot:
        """``last`` with the handler's part read anew (the shared parts are its own)."""
        if not self._by_identity:
            self._by_identity = not _plain_rebindings(values, last.values)
        handler, values = self._read_handler()
        return last._replace(
            values=values,
            lens=tuple(handler.lens.values()),
            prints=tuple(handler.prints.values()),
            handler=handler,
        )

    def _read_handler(self) -> tuple[Handler, list[Any]]:
        """The handler's part read anew, with its functions and classes found anew (only
        here, when it moved: not per invocation); and the referents the next snapshots
        compare, of the namespaces and of what those functions and classes hold."""
        namespaces = _rotation.referents(*map(vars, self._handler_modules.values()))
        try:
            # found again only when a global was rebound (a container that grew, a cell
            # rebound, leave the functions and classes as they were)
            owners = self._owners
            if not identical(namespaces, self._owners_for):
                owners = _owned.find_owners(self._handler_modules)
            owned = _owned.read_owned(owners)
        except Exception:  # noqa: BLE001 - fail open: the namespaces are still watched
            owners, owned = _owned.NO_OWNERS, {}
        self._owners, self._owners_for = owners, namespaces
        self._handler_dicts = (*map(vars, self._handler_modules.values()), *owners.sources)
        handler, self._containers = _handler_state.read_handler(
            self._handler_modules,
            deep=self.deep,
            keep_contents=self._keep_contents,
            owned=owned,
            owners=frozenset(id(owner.obj) for owner in owners.owners),
        )
        return handler, _rotation.referents(*self._handler_dicts)

    def _read_modules(self) -> dict[str, Any]:
        self._resolve()  # imports: the handler's modules, new stdlib modules
        return dict(sys.modules)

    def _read_logging(self) -> _logging.LoggingData:
        data, self._log_sources = _logging.read_logging()
        return data


# Types whose == with anything is the interpreter's own and bounded: a scalar, a string, a
# function, a module, a plain class. (A container's == walks it; a user class's runs its code.)
_PLAIN = frozenset(
    {
        int, float, complex, str, bytes, bool, type(None), type, ModuleType, FunctionType,
        BuiltinFunctionType, MethodType,
    }
)  # fmt: skip


def _path_reading() -> dict[str, Any]:
    # entries by how often they appear; "" for the list itself and its order
    return {**collections.Counter(map(str, sys.path)), "": (id(sys.path), *map(id, sys.path))}


# How the witness looks at the shared state, by the first part of a change's key.
_SHARED_PARTS: dict[str, Callable[[GlobalsProbe], View]] = {
    ENVIRONMENT_VARIABLE: lambda probe: View(lambda: dict(_environ.environ_data())),
    PATH_ENTRY: lambda probe: View(_path_reading),
    WORKING_DIRECTORY: lambda probe: View(lambda: {"": _cwd.getcwd()}),
    SIGNAL_HANDLER: lambda probe: View(probe._signal_reading),
    MODULES_ENTRY: lambda probe: View(
        lambda: _by_name(sys.modules, id),
        lambda: _rotation.referents(sys.modules),
    ),
    LOGGING_HANDLER: lambda probe: View(_logging.handler_ids),
}


def _by_name(namespace: dict[str, Any], reading: Callable[[Any], Any]) -> dict[str, Any]:
    # (keys and values in one pass of C: no other thread runs between them)
    return dict(zip(namespace, map(reading, namespace.values()), strict=True))


def _handler_reading(namespace: dict[str, Any], owned: _owned.Owners) -> dict[str, Any]:
    """A handler module's globals, and what its functions and classes hold (a default, a
    cell, a class attribute), by the names their changes are keyed by."""
    reading = _by_name(namespace, _value_reading)
    for (_, name), held in _owned.read_owned(owned).items():
        reading[name] = _value_reading(held.value)
    return reading


def _value_reading(value: Any) -> tuple[int, int]:
    """A global's identity, and its size when it is a plain container."""
    return id(value), len(value) if _handler_state.is_container(value) else -1


def _plain_rebindings(values: list[Any], was: list[Any]) -> bool:
    """Whether every global rebound between the two reads went from and to a plain value."""
    if len(values) != len(was):  # a name added or deleted: == stops at the lengths
        return True
    return all(
        type(new) in _PLAIN and type(old) in _PLAIN
        for new, old in zip(values, was)  # noqa: B905 - equal lengths
        if new is not old
    )
