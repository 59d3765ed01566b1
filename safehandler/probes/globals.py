"""Global state an invocation left changed, and a way to put it back.

Watched: the handler's own module namespaces; ``builtins``; the public callables and classes of
the loaded stdlib modules (a replaced ``json.dumps``); ``sys.modules`` replacements;
``os.environ``; ``sys.path``; the handler lists of the loggers; the working directory; the
Python-level signal handlers; the number of atexit callbacks.

The token is cheap. The values of the watched namespaces come out of ``gc.get_referents``
(a loop in C; a stdlib module that is mostly constants is read by an itemgetter of its watched
names instead) and are compared with the previous token's with ``==``, which passes identical
objects without calling their ``__eq__`` (functions, classes and modules compare by identity
anyway; an equal string in ``os.environ`` is no change). Copies of the watched state are
taken only when something moved, part by part, and a part that did not move is shared with
the previous token: in the steady state ``snapshot()`` returns the previous token itself, so
the engine's ``after == before`` is an identity test.

The handler's own namespaces are compared by every snapshot. The shared state (everything
else) is dealt into ``every`` slices of about equal cost, and a snapshot compares one slice,
in turn: with ``every=8`` a monkeypatch is seen within 8 invocations, for an eighth of the
cost, and its report says in which invocations it was made. Any change found builds a whole
new token, which compares everything.

What counts. A global of the handler's modules is one group per (module, attribute): a lazy
initialisation (set once, then left alone) is one resource in its group, which the tracker's
growth rule tolerates; a second rebinding, or a container that grows in invocation after
invocation, is growth. Intended caches are allowed by name (``allow``) or by object
(``allow_global``): their mutation is not reported, only growth in ten consecutive
invocations (the verdicts' streak rule). Everything else is not the handler's to
change: one change is a finding (``verdicts.IMMEDIATE_NOUNS``). New modules imported during an
invocation are not findings: lazy imports are normal.
"""

from __future__ import annotations

import atexit
import builtins
import collections
import fnmatch
import functools
import itertools
import logging
import operator
import os
import re
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from .._records import (
    ALLOWED_CACHE,
    ATEXIT_CALLBACK,
    BUILTIN,
    ENVIRONMENT_VARIABLE,
    HANDLER_STATE_NOUNS,
    LOGGING_HANDLER,
    MODULE_GLOBAL,
    MODULES_ENTRY,
    NO_CHANGE,
    PATH_ENTRY,
    SIGNAL_HANDLER,
    STDLIB_ATTRIBUTE,
    WORKING_DIRECTORY,
    Delta,
    Resource,
    global_change,
)
from .._scope import Scope
from .._sites import is_user_code
from ._describe import (
    MISSING,
    describe,
    describe_env,
    describe_handler,
    describe_logger,
    describe_path,
    describe_signal,
    rebound,
    signal_name,
)
from ._protocol import Probe
from ._rotation import Rotation, referents

if TYPE_CHECKING:
    from ..verdicts import Verdict

__all__ = [
    "COMMON_STDLIB",
    "GlobalsProbe",
    "allow_global",
    "handler_modules",
]

_T = TypeVar("_T")

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

_DEEP_LIMIT = 10_000  # containers larger than this get no content fingerprint
_CONTAINERS = (dict, list, set, bytearray, collections.deque)
# A subclass that overrides __len__ could run anything: only the built-in lengths are read.
_PLAIN_LEN = frozenset(kind.__len__ for kind in _CONTAINERS)
# os and os.path re-export these; patching them directly is not how anyone monkeypatches.
_SKIP_STDLIB = frozenset({"builtins", "posix", "nt", "ntpath", "posixpath"} - {os.path.__name__})


_change = global_change


# -- allowed objects -------------------------------------------------------------------

# id -> a weak reference to the object, or a 1-tuple holding it: dicts, lists and sets cannot
# be weakly referenced, so those are kept alive, which keeps their id from being reused (an
# intended cache lives as long as the process anyway).
_allowed: dict[int, Any] = {}


def allow_global(obj: _T) -> _T:
    """Mark ``obj`` as an intended cache and return it: ``CACHE = allow_global({})``.

    Its mutation is not reported, and ``restore()`` leaves it alone; growth in every one of
    ten consecutive invocations still is (an unbounded cache).
    """
    key = id(obj)
    try:
        _allowed[key] = weakref.ref(obj, functools.partial(_forget, key))
    except TypeError:
        _allowed[key] = (obj,)
    return obj


def _forget(key: int, ref: object) -> None:
    if _allowed.get(key) is ref:
        _allowed.pop(key, None)


def _is_allowed(obj: object) -> bool:
    entry = _allowed.get(id(obj))
    if entry is None:
        return False
    if type(entry) is tuple:
        return entry[0] is obj
    return bool(entry() is obj)


def _ours(value: object) -> bool:
    """safehandler's own deliberate wrappers (``__safehandler__ = True``) are not changes."""
    try:
        return bool(getattr(value, "__safehandler__", False))
    except Exception:  # noqa: BLE001 - an object whose __getattr__ raises is not ours
        return False


# -- reading the state ------------------------------------------------------------------


# the C function: signal.getsignal wraps it in Python to return enums
_getsignal: Callable[[int], Any] = getattr(signal, "_signal", signal).getsignal
_ncallbacks: Callable[[], int | None] = getattr(atexit, "_ncallbacks", lambda: None)


# Set by the runtime itself between invocations (awslambdaric's X-Ray trace id): not the
# handler's doing, and not a reason to leave the cheap path.
RUNTIME_ENV = frozenset({"_X_AMZN_TRACE_ID", "_LAMBDA_TELEMETRY_LOG_FD"})
_RUNTIME_ENV_KEYS = frozenset(
    getattr(os.environ, "encodekey", lambda name: name)(name) for name in RUNTIME_ENV
)


def _environ_data() -> Any:
    # os.environ keeps its bytes in a plain dict: reading it costs no decoding
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):
        data = dict(os.environ)
    if any(key in data for key in _RUNTIME_ENV_KEYS):
        data = {key: value for key, value in data.items() if key not in _RUNTIME_ENV_KEYS}
    return data


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed from under us
        return None


def _catchable_signals() -> tuple[int, ...]:
    try:
        valid = signal.valid_signals()
    except (AttributeError, ValueError, OSError):
        return ()
    uncatchable = {getattr(signal, name, None) for name in ("SIGKILL", "SIGSTOP")}
    realtime = getattr(signal, "SIGRTMIN", None)
    return tuple(
        sorted(
            int(sig)
            for sig in valid
            if sig not in uncatchable and (realtime is None or sig < realtime)
        )
    )


def _is_dunder(name: object) -> bool:
    return not isinstance(name, str) or (name.startswith("__") and name.endswith("__"))


def _is_container(value: object) -> bool:
    return isinstance(value, _CONTAINERS) and type(value).__len__ in _PLAIN_LEN


def _fingerprint(obj: Any) -> int | None:
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


# -- the token ----------------------------------------------------------------------------


# the watched stdlib modules: (name, module, the public callables and classes watched)
_Layout = tuple[tuple[str, ModuleType, tuple[str, ...]], ...]


class _Part(NamedTuple):
    key: list[Any]  # referents: what the next snapshot compares
    data: Any  # the copy diff() and restore() read


class _Handler(NamedTuple):
    modules: dict[str, ModuleType]
    namespaces: dict[str, dict[str, Any]]  # copies
    lens: dict[tuple[str, str], int]  # (module, attribute) -> size, for mutable containers
    prints: dict[tuple[str, str], int | None]  # deep: content fingerprints
    contents: dict[tuple[str, str], Any]  # deep: shallow copies, for restore()


class _Snapshot(NamedTuple):
    """The token. Equal only to itself: an unchanged state returns the previous token."""

    values: list[Any]  # referents of the handler's namespaces
    lens: tuple[int, ...]
    prints: tuple[int | None, ...]
    slices: tuple[Any, ...]  # the shared state, one read per slice of the rotation
    taken: int  # the probe's snapshot count when this token was built
    cwd: str | None
    signals: tuple[Any, ...]
    atexit: int | None
    handler: _Handler
    builtins: _Part  # dict copy
    stdlib: _Part  # (the watch layout, the watched values in its order)
    modules: _Part  # dict copy of sys.modules
    logging: _Part  # logger name -> (logger, tuple of handlers)
    path: _Part  # (the sys.path list, tuple copy)
    environ: _Part  # dict copy of os.environ

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)


def _flatten(layout: _Layout) -> Iterator[tuple[str, ModuleType, str]]:
    for module_name, module, names in layout:
        for name in names:
            yield module_name, module, name


def _same(a: list[Any], b: list[Any]) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a value whose __eq__ raises is not the one we saw
        return False


def _identical(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and not any(map(operator.is_not, a, b))


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
    ) -> None:
        """``stdlib``: the stdlib module names whose public callables and classes are watched
        (once loaded), or ``"all"``: every loaded public stdlib module and submodule. The
        default is ``"all"`` in deep mode and ``COMMON_STDLIB`` otherwise (cost: see there).

        ``every``: the shared state (everything but the handler's modules) is split into this
        many slices of about equal cost, and each snapshot checks one of them, in turn: a
        change there is seen within ``every`` snapshots instead of at once, for a fraction of
        the cost. The handler's own globals are checked by every snapshot.
        """
        self.module_names = tuple(dict.fromkeys(modules))
        if stdlib is None:
            stdlib = "all" if deep else COMMON_STDLIB
        self._stdlib_wanted = None if stdlib == "all" else frozenset(stdlib)
        patterns = [fnmatch.translate(pattern) for pattern in allow]
        self._allow = re.compile("|".join(patterns)).match if patterns else None
        self.deep = deep
        self._last: _Snapshot | None = None
        self._taken = 0  # snapshots taken
        self._rotation = Rotation(every)  # the shared state, a slice per snapshot
        # what the last diff saw, for act(): the token before it, and the changes
        self._acted_on: tuple[_Snapshot, list[Resource]] | None = None
        self._signals = _catchable_signals()
        self._handler_modules: dict[str, ModuleType] = {}
        self._handler_dicts: tuple[dict[str, Any], ...] = ()
        self._containers: tuple[Any, ...] = ()
        self._stdlib_seen: set[str] = set()
        self._stdlib_ids: set[int] = set()  # a module under two names (os.path) is watched once
        self._stdlib: list[tuple[str, ModuleType, tuple[str, ...]]] = []
        self._layout: _Layout = ()  # self._stdlib frozen: stdlib data refers to it
        # Most stdlib namespaces are compared whole (in the joined referents); one that is
        # mostly constants (socket, ssl, stat) is cheaper read by an itemgetter of its names.
        self._dense: list[dict[str, Any]] = []
        self._sparse: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any], tuple[str, ...]]]
        self._sparse = []
        self._log_sources: tuple[Any, ...] = ()
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
        self._handler_dicts = tuple(vars(module) for module in found.values())
        for name, module in list(sys.modules.items()):
            if name in self._stdlib_seen or not self._is_watched_stdlib(name):
                continue
            self._stdlib_seen.add(name)
            if (
                name in found
                or not isinstance(module, ModuleType)
                or id(module) in self._stdlib_ids
            ):
                continue
            self._stdlib_ids.add(id(module))
            names = tuple(
                sorted(
                    attr
                    for attr, value in list(vars(module).items())
                    if not attr.startswith("_") and callable(value) and not _ours(value)
                )
            )
            if names:
                self._stdlib.append((name, module, names))
                self._layout = tuple(self._stdlib)
                namespace = vars(module)
                # measured: ~5 ns per namespace entry, against ~12 ns per name and ~150 a call
                if 12 * len(names) + 150 < 5 * len(namespace):
                    read = ("__name__", *names)  # never a single name: always a tuple
                    self._sparse.append((namespace, operator.itemgetter(*read), read))
                else:
                    self._dense.append(namespace)

    def _is_watched_stdlib(self, name: str) -> bool:
        if self._stdlib_wanted is not None:
            return name in self._stdlib_wanted
        parts = name.split(".")
        return (
            parts[0] in sys.stdlib_module_names
            and parts[0] not in _SKIP_STDLIB
            and not any(part.startswith("_") for part in parts)
        )

    def _deal_shared_state(self) -> bool:
        """Share the shared state out into the rotation's slices, when its layout changed;
        say whether it did."""
        # (the slices hold the old logging sources: their ids cannot be reused meanwhile)
        layout = (len(self._dense), len(self._sparse), *map(id, self._log_sources))
        sources = (vars(builtins), *self._dense, sys.modules, *self._log_sources)
        # costs in container entries (about 5 ns each): a system call is about 100 of them, a
        # signal handler read 6, a stdlib attribute read by name 3
        readers: list[tuple[int, Callable[[], Any]]] = [
            (len(os.environ), _read_environ),
            (len(sys.path), _read_path),
            (100, _getcwd),
            (6 * len(self._signals), self._read_signals),
            (10, _ncallbacks),
        ]
        readers += [
            (3 * len(names), functools.partial(_read_names, namespace, getter, names))
            for namespace, getter, names in self._sparse
        ]
        return self._rotation.deal(layout, sources, readers)

    def _read_signals(self) -> tuple[Any, ...]:
        return tuple(map(_getsignal, self._signals))

    @property
    def every(self) -> int:
        """Snapshots over which the shared state comes round once."""
        return self._rotation.every

    def _is_allowed_name(self, dotted: str) -> bool:
        return self._allow is not None and self._allow(dotted) is not None

    # -- the probe protocol -------------------------------------------------------------

    def snapshot(self) -> _Snapshot:
        self._taken += 1
        last = self._last
        if last is not None:
            try:
                # `==` passes identical values without calling their __eq__; a value rebound
                # to an equal one (an equal int, an empty list for an empty list) passes too,
                # and is seen with the next change, which compares identities (_refresh).
                if (
                    referents(*self._handler_dicts) == last.values
                    and tuple(map(len, self._containers)) == last.lens
                    and (not self.deep or tuple(map(_fingerprint, self._containers)) == last.prints)
                    and self._rotation.unchanged(last.slices)
                ):
                    return last
            except Exception:  # noqa: BLE001,S110 - a value whose __eq__ raises has changed
                pass
        self._last = self._refresh(last)
        return self._last

    def diff(
        self,
        before: _Snapshot | None,
        after: _Snapshot,
        scope: Scope,
        invocation: int,
    ) -> Delta:
        if before is None or before is after:  # (None: the first look is the baseline)
            return NO_CHANGE
        added: list[Resource] = []
        if before.handler is not after.handler:
            added += self._diff_handler(before.handler, after.handler, invocation)
        if before.builtins is not after.builtins:
            added += self._diff_namespace(
                "builtins", before.builtins.data, after.builtins.data, BUILTIN, invocation
            )
        if before.stdlib is not after.stdlib:
            added += self._diff_stdlib(before.stdlib.data, after.stdlib.data, invocation)
        if before.modules is not after.modules:
            added += _diff_modules(before.modules.data, after.modules.data, invocation)
        if before.environ is not after.environ:
            added += self._diff_environ(before.environ.data, after.environ.data, invocation)
        if before.path is not after.path:
            added += _diff_path(before.path.data[1], after.path.data[1], invocation)
        if before.logging is not after.logging:
            added += _diff_logging(before.logging.data, after.logging.data, invocation)
        if before.cwd != after.cwd:
            detail = f"changed: {describe_path(before.cwd)} -> {describe_path(after.cwd)}"
            added.append(_change(WORKING_DIRECTORY, (WORKING_DIRECTORY, ""), detail, invocation))
        if before.signals != after.signals:
            added += self._diff_signals(before.signals, after.signals, invocation)
        if before.atexit is not None and after.atexit is not None:
            detail = "registered during the invocation (atexit cannot be undone)"
            added += [
                _change(ATEXIT_CALLBACK, (ATEXIT_CALLBACK, ""), detail, invocation)
                for _ in range(after.atexit - before.atexit)
            ]
        self._date_shared_changes(added, min(after.taken - before.taken, self.every), invocation)
        self._acted_on = (before, added) if added else None
        return Delta(added, []) if added else NO_CHANGE

    def act(self, verdict: Verdict) -> list[Resource]:
        """Put back the changes the verdict says to restore (a change released nothing)."""
        acted_on, self._acted_on = self._acted_on, None
        if acted_on is None:
            return []
        before, added = acted_on
        wanted = {res.key for res in added if verdict.restores(res)}
        if wanted and self.restore(before, wanted):
            self._last = self._refresh(self._last)
        return []

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

    # -- building a token (only when something moved) ----------------------------------

    def _refresh(self, last: _Snapshot | None) -> _Snapshot:
        modules = _part(last and last.modules, referents(sys.modules), self._read_modules)
        values = referents(*self._handler_dicts)
        if (
            last is not None
            and _identical(values, last.values)
            and tuple(map(len, self._containers)) == last.lens
            and (not self.deep or tuple(map(_fingerprint, self._containers)) == last.prints)
        ):
            handler, lens, prints = last.handler, last.lens, last.prints
        else:
            # read once: a content fingerprint of a large container is dear (deep mode)
            handler = self._read_handler()
            lens = tuple(handler.lens.values())  # in the order of self._containers
            prints = tuple(handler.prints.values())
        builtins_part = _part(
            last and last.builtins, referents(vars(builtins)), lambda: dict(vars(builtins))
        )
        stdlib = _part(
            last and last.stdlib,
            [*referents(*self._dense), *self._read_sparse()],
            self._read_stdlib,
        )
        logging_part = _part(
            last and self._log_sources and last.logging,
            referents(*self._log_sources),
            self._read_logging,
        )
        if logging_part is not (last and last.logging):  # sources changed: key them anew
            logging_part = _Part(referents(*self._log_sources), logging_part.data)
        path_list = sys.path
        path = _part(
            last and last.path.data[0] is path_list and last.path,
            referents(path_list),
            lambda: (path_list, tuple(path_list)),
        )
        environ = _part(last and last.environ, referents(_environ_data()), lambda: dict(os.environ))
        dealt = self._deal_shared_state()
        token = _Snapshot(
            values=values,
            lens=lens,
            prints=prints,
            slices=(),
            taken=self._taken,
            cwd=_getcwd(),
            signals=self._read_signals(),
            atexit=_ncallbacks(),
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
        if last is not None and not dealt and _shared_state_unmoved(last, token):
            return token._replace(slices=last.slices)
        return token._replace(slices=self._rotation.read_all())

    def _read_modules(self) -> dict[str, Any]:
        self._resolve()  # imports: the handler's modules, new stdlib modules
        return dict(sys.modules)

    def _read_logging(self) -> dict[str, tuple[logging.Logger, tuple[Any, ...]]]:
        data, self._log_sources = _read_logging()
        return data

    def _read_handler(self) -> _Handler:
        namespaces = {name: dict(vars(module)) for name, module in self._handler_modules.items()}
        containers = []
        lens: dict[tuple[str, str], int] = {}
        prints: dict[tuple[str, str], int | None] = {}
        contents: dict[tuple[str, str], Any] = {}
        for module_name, namespace in namespaces.items():
            for name, value in namespace.items():
                if _is_dunder(name) or not _is_container(value):
                    continue
                containers.append(value)
                lens[module_name, name] = len(value)
                if self.deep:
                    prints[module_name, name] = fingerprint = _fingerprint(value)
                    if fingerprint is not None:
                        contents[module_name, name] = _contents(value)
        self._containers = tuple(containers)
        return _Handler(dict(self._handler_modules), namespaces, lens, prints, contents)

    def _read_sparse(self) -> list[Any]:
        return [_read_names(*sparse) for sparse in self._sparse]

    def _read_stdlib(self) -> tuple[_Layout, tuple[Any, ...]]:
        values: list[Any] = []
        for _, module, names in self._layout:
            values += map(vars(module).get, names, itertools.repeat(MISSING))
        return self._layout, tuple(values)

    # -- describing what moved ---------------------------------------------------------

    def _diff_handler(self, before: _Handler, after: _Handler, invocation: int) -> list[Resource]:
        out: list[Resource] = []
        for module_name, now in after.namespaces.items():
            was = before.namespaces.get(module_name)
            if was is None or before.modules.get(module_name) is not after.modules[module_name]:
                continue  # imported (or re-imported) during the invocation: baseline
            for name in sorted(was.keys() | now.keys(), key=str):
                if _is_dunder(name):
                    continue
                old, new = was.get(name, MISSING), now.get(name, MISSING)
                key = (module_name, name)
                dotted = f"{module_name}.{name}"
                size = (before.lens.get(key), after.lens.get(key))
                if self._is_allowed_name(dotted) or _is_allowed(old if new is MISSING else new):
                    old_size, new_size = size
                    if old_size is not None and new_size is not None and new_size > old_size:
                        detail = f"{dotted} grew: {old_size} -> {new_size} items"
                        out.append(_change(ALLOWED_CACHE, key, detail, invocation))
                    continue
                if old is not new:
                    detail = rebound(dotted, name, old, new)
                elif size[0] is not None and size[1] is not None and size[0] != size[1]:
                    verb = "grew" if size[1] > size[0] else "shrank"
                    detail = f"{dotted} {verb}: {size[0]} -> {size[1]} items"
                elif self.deep and before.prints.get(key) != after.prints.get(key):
                    detail = f"{dotted} contents changed: {size[1]} items"
                else:
                    continue
                out.append(_change(MODULE_GLOBAL, key, detail, invocation))
        return out

    def _diff_namespace(
        self,
        module_name: str,
        was: dict[str, Any],
        now: dict[str, Any],
        noun: str,
        invocation: int,
    ) -> list[Resource]:
        out: list[Resource] = []
        for name in sorted(was.keys() | now.keys(), key=str):
            old, new = was.get(name, MISSING), now.get(name, MISSING)
            detail = self._rebinding(module_name, name, old, new)
            if detail is not None:
                out.append(_change(noun, (module_name, name), detail, invocation))
        return out

    def _rebinding(self, module_name: str, name: str, old: Any, new: Any) -> str | None:
        dotted = f"{module_name}.{name}"
        if old is new or name == "_" or _ours(new) or self._is_allowed_name(dotted):
            return None
        return rebound(dotted, name, old, new)

    def _diff_stdlib(
        self,
        before: tuple[_Layout, tuple[Any, ...]],
        after: tuple[_Layout, tuple[Any, ...]],
        invocation: int,
    ) -> list[Resource]:
        # Stdlib modules imported during the invocation were appended: compare the common part.
        layout, old_values = before
        new_values = after[1]
        out: list[Resource] = []
        moved = itertools.compress(itertools.count(), map(operator.is_not, old_values, new_values))
        attrs = list(_flatten(layout))
        for index in moved:
            module_name, _, name = attrs[index]
            old, new = old_values[index], new_values[index]
            detail = self._rebinding(module_name, name, old, new)
            if detail is not None:
                out.append(_change(STDLIB_ATTRIBUTE, (module_name, name), detail, invocation))
        return out

    def _diff_environ(
        self, was: dict[str, str], now: dict[str, str], invocation: int
    ) -> list[Resource]:
        out: list[Resource] = []
        for name in sorted(was.keys() | now.keys()):
            old, new = was.get(name), now.get(name)
            if old == new or name in RUNTIME_ENV or self._is_allowed_name(f"os.environ.{name}"):
                continue
            if old is None:
                detail = f"{name} added: {describe_env(name, new or '')}"
            elif new is None:
                detail = f"{name} removed: was {describe_env(name, old)}"
            else:
                detail = f"{name} changed: {describe_env(name, old)} -> {describe_env(name, new)}"
            out.append(
                _change(ENVIRONMENT_VARIABLE, (ENVIRONMENT_VARIABLE, name), detail, invocation)
            )
        return out

    def _diff_signals(
        self, was: tuple[Any, ...], now: tuple[Any, ...], invocation: int
    ) -> list[Resource]:
        out: list[Resource] = []
        for sig, old, new in zip(self._signals, was, now, strict=True):
            if old is new or old == new:
                continue
            name = signal_name(sig)
            detail = f"{name} replaced: {describe_signal(old)} -> {describe_signal(new)}"
            out.append(_change(SIGNAL_HANDLER, (SIGNAL_HANDLER, name), detail, invocation))
        return out

    # -- putting it back ----------------------------------------------------------------

    def restore(self, before: _Snapshot, only: Collection[Hashable] | None = None) -> list[str]:
        """Put the watched state back as it was when ``before`` was taken; say what was put back.

        Left alone: allowed names and objects (they are meant to persist), safehandler's own
        wrappers, container contents unless deep mode copied them, atexit registrations (they
        cannot be undone portably), signal handlers outside the main thread. ``only`` limits
        the restore to these resource keys (say, the groups the tracker judged leaking), so
        that a lazily initialised global keeps its value and is not re-created per invocation.
        """

        def wanted(key: tuple[str, str]) -> bool:
            return only is None or key in only

        done: list[str] = []
        done += self._restore_handler(before.handler, wanted)
        done += self._restore_namespace(builtins, "builtins", before.builtins.data, wanted)
        layout, values = before.stdlib.data
        for (module_name, module, name), value in zip(_flatten(layout), values, strict=True):
            current = vars(module).get(name, MISSING)
            if self._rebinding(module_name, name, value, current) is None:
                continue
            if wanted((module_name, name)):
                _put_attr(module, name, value)
                done.append(f"{module_name}.{name}")
        for name, module in before.modules.data.items():
            current = sys.modules.get(name)
            if current is not None and current is not module and wanted((MODULES_ENTRY, name)):
                sys.modules[name] = module
                done.append(f"sys.modules[{name!r}]")
        done += self._restore_environ(before.environ.data, wanted)
        original, entries = before.path.data
        done += _restore_path(original, entries, wanted)
        done += _restore_logging(before.logging.data, wanted)
        if before.cwd is not None and _getcwd() != before.cwd and wanted((WORKING_DIRECTORY, "")):
            os.chdir(before.cwd)
            done.append("working directory")
        if threading.current_thread() is threading.main_thread():
            for sig, handler in zip(self._signals, before.signals, strict=True):
                name = signal_name(sig)
                if handler is None or _getsignal(sig) == handler:
                    continue
                if wanted((SIGNAL_HANDLER, name)):
                    signal.signal(sig, handler)
                    done.append(f"signal handler {name}")
        return done

    def _restore_handler(
        self, before: _Handler, wanted: Callable[[tuple[str, str]], bool]
    ) -> list[str]:
        done: list[str] = []
        for module_name, module in before.modules.items():
            was = before.namespaces[module_name]
            live = vars(module)
            for name in [name for name in list(live) if name not in was]:
                key = (module_name, name)
                if _is_dunder(name) or self._is_allowed_name(f"{module_name}.{name}"):
                    continue
                if not _is_allowed(live.get(name)) and wanted(key):
                    _put_attr(module, name, MISSING)
                    done.append(f"{module_name}.{name} (deleted)")
            for name, value in was.items():
                key = (module_name, name)
                current = live.get(name, MISSING)
                if (
                    _is_dunder(name)
                    or self._is_allowed_name(f"{module_name}.{name}")
                    or _is_allowed(current if current is not MISSING else value)
                    or not wanted(key)
                ):
                    continue
                if current is not value:
                    _put_attr(module, name, value)
                    done.append(f"{module_name}.{name}")
                copied = before.contents.get(key)
                if copied is not None and (
                    len(value) != before.lens[key] or _fingerprint(value) != before.prints[key]
                ):
                    _put_back(value, copied)
                    done.append(f"{module_name}.{name} (contents)")
        return done

    def _restore_namespace(
        self,
        module: ModuleType,
        module_name: str,
        was: dict[str, Any],
        wanted: Callable[[tuple[str, str]], bool],
    ) -> list[str]:
        done: list[str] = []
        live = vars(module)
        for name in sorted(was.keys() | live.keys(), key=str):
            value = was.get(name, MISSING)
            current = live.get(name, MISSING)
            key = (module_name, name)
            if self._rebinding(module_name, name, value, current) is not None and wanted(key):
                _put_attr(module, name, value)
                done.append(f"{module_name}.{name}")
        return done

    def _restore_environ(
        self, was: dict[str, str], wanted: Callable[[tuple[str, str]], bool]
    ) -> list[str]:
        # Only what differs is set or unset: no moment with an empty environment.
        done: list[str] = []
        now = dict(os.environ)
        for name in sorted(now.keys() | was.keys()):
            if now.get(name) == was.get(name) or self._is_allowed_name(f"os.environ.{name}"):
                continue
            if not wanted((ENVIRONMENT_VARIABLE, name)):
                continue
            if name in was:
                os.environ[name] = was[name]
            else:
                del os.environ[name]
            done.append(f"os.environ[{name!r}]")
        return done


def _read_names(
    namespace: dict[str, Any], getter: Callable[[dict[str, Any]], Any], names: tuple[str, ...]
) -> Any:
    try:
        return getter(namespace)
    except KeyError:  # a watched name was deleted: the same tuple, with a marker
        return tuple(map(namespace.get, names, itertools.repeat(MISSING)))


def _read_environ() -> list[Any]:
    return referents(_environ_data())


def _read_path() -> list[Any]:
    return referents(sys.path)


_shared_parts = operator.attrgetter("builtins", "stdlib", "modules", "logging", "path", "environ")
_small_reads = operator.attrgetter("cwd", "signals", "atexit")


def _shared_state_unmoved(last: _Snapshot, token: _Snapshot) -> bool:
    """Every shared part is the previous token's own (its key did not move), and the reads
    kept whole in the token are equal."""
    return all(map(operator.is_, _shared_parts(token), _shared_parts(last))) and (
        _small_reads(token) == _small_reads(last)
    )


def _part(last: Any, key: list[Any], read: Callable[[], Any]) -> _Part:
    """The previous part if its key did not move (``last`` falsy: no previous), else a new one."""
    if last and _same(key, last.key):
        return last  # type: ignore[no-any-return]
    return _Part(key, read())


def _put_attr(module: ModuleType, name: str, value: Any) -> None:
    if value is MISSING:
        vars(module).pop(name, None)
    else:
        setattr(module, name, value)


def _diff_modules(was: dict[str, Any], now: dict[str, Any], invocation: int) -> list[Resource]:
    out: list[Resource] = []
    for name, module in now.items():
        old = was.get(name)
        if old is None or old is module:
            continue  # a new import (or a removed entry): normal
        detail = f"sys.modules[{name!r}] replaced: {describe(old)} -> {describe(module)}"
        out.append(_change(MODULES_ENTRY, (MODULES_ENTRY, name), detail, invocation))
    return out


def _diff_path(was: tuple[str, ...], now: tuple[str, ...], invocation: int) -> list[Resource]:
    out: list[Resource] = []
    gained = collections.Counter(now) - collections.Counter(was)
    lost = collections.Counter(was) - collections.Counter(now)
    for verb, entries in (("added", gained), ("removed", lost)):
        for entry, count in entries.items():
            detail = f"{describe(entry)} {verb}"
            res = _change(PATH_ENTRY, (PATH_ENTRY, str(entry)), detail, invocation)
            out += [res] * count
    if not out and was != now:
        out.append(_change(PATH_ENTRY, (PATH_ENTRY, ""), "reordered", invocation))
    return out


def _loggers() -> list[logging.Logger]:
    registered = list(logging.Logger.manager.loggerDict.values())
    return [logging.root, *(item for item in registered if isinstance(item, logging.Logger))]


def _read_logging() -> tuple[dict[str, tuple[logging.Logger, tuple[Any, ...]]], tuple[Any, ...]]:
    """Every logger's handlers, and what the next snapshots compare: the list of all handlers
    ever created (weakly held), the logger registry, and the handler lists that are not empty.
    (An existing handler added to a logger that had none is seen at the next change.)
    """
    loggers = _loggers()
    data = {logger.name: (logger, tuple(logger.handlers)) for logger in loggers}
    handler_refs = getattr(logging, "_handlerList", None)
    sources = (
        *([handler_refs] if isinstance(handler_refs, list) else []),
        logging.Logger.manager.loggerDict,
        *(logger.handlers for logger in loggers if logger.handlers or logger is logging.root),
    )
    return data, sources


def _diff_logging(
    was: dict[str, tuple[logging.Logger, tuple[Any, ...]]],
    now: dict[str, tuple[logging.Logger, tuple[Any, ...]]],
    invocation: int,
) -> list[Resource]:
    out: list[Resource] = []
    for name, (_, handlers) in now.items():
        old = was.get(name, (None, ()))[1]
        old_ids = {id(handler) for handler in old}
        new_ids = {id(handler) for handler in handlers}
        key = (LOGGING_HANDLER, name)
        for handler in handlers:
            if id(handler) not in old_ids:
                detail = f"{describe_handler(handler)} added to {describe_logger(name)}"
                out.append(_change(LOGGING_HANDLER, key, detail, invocation))
        for handler in old:
            if id(handler) not in new_ids:
                detail = f"{describe_handler(handler)} removed from {describe_logger(name)}"
                out.append(_change(LOGGING_HANDLER, key, detail, invocation))
    return out


def _restore_path(
    original: list[str], entries: tuple[str, ...], wanted: Callable[[tuple[str, str]], bool]
) -> list[str]:
    current = sys.path
    if current is original and tuple(current) == entries:
        return []
    changed = set(current).symmetric_difference(entries) or {""}
    if not any(wanted((PATH_ENTRY, str(entry))) for entry in changed):
        return []
    sys.path = original
    original[:] = entries
    return ["sys.path"]


def _restore_logging(
    was: dict[str, tuple[logging.Logger, tuple[Any, ...]]],
    wanted: Callable[[tuple[str, str]], bool],
) -> list[str]:
    """Handlers added since: removed from their loggers, and closed unless used before."""
    done: list[str] = []
    used_before = {id(handler) for _, handlers in was.values() for handler in handlers}
    for logger in _loggers():
        old = {id(handler) for handler in was.get(logger.name, (None, ()))[1]}
        for handler in list(logger.handlers):
            if id(handler) in old or not wanted((LOGGING_HANDLER, logger.name)):
                continue
            logger.removeHandler(handler)
            if id(handler) not in used_before:
                handler.close()
            done.append(
                f"{LOGGING_HANDLER} {describe_handler(handler)} removed from "
                f"{describe_logger(logger.name)}"
            )
    return done


def handler_modules(handler: Callable[..., Any] | None) -> list[str]:
    """The handler's own modules: its module, and the loaded modules of the same top-level
    package or from the same directory (Lambda's task root). Library code is not the
    handler's: its globals are watched as stdlib or not at all."""
    if handler is None:
        return []
    name = getattr(_unwrap(handler), "__module__", None)
    module = sys.modules.get(name or "")
    if module is None or name is None:
        return []
    top = name.partition(".")[0]
    where = getattr(module, "__file__", None)
    root = os.path.dirname(os.path.abspath(where)) if where else None
    found = [name]
    for other, candidate in list(sys.modules.items()):
        if other == name or not isinstance(candidate, ModuleType):
            continue
        path = getattr(candidate, "__file__", None) or ""
        same_package = other.partition(".")[0] == top and top != "safehandler"
        beside = bool(root) and path.startswith(os.path.join(root or "", ""))
        if same_package or (beside and is_user_code(path)):
            found.append(other)
    return found


def _unwrap(func: Callable[..., Any]) -> Callable[..., Any]:
    """``inspect.unwrap`` without importing inspect (5 ms of cold start): the innermost
    ``__wrapped__`` of a stack of decorators."""
    seen = {id(func)}
    while (inner := getattr(func, "__wrapped__", None)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        func = inner
    return func
