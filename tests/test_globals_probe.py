"""The globals probe, called directly: each change on purpose with its exact resource, and a
clean twin that reports nothing. Everything mutated is put back (monkeypatch, finally)."""

from __future__ import annotations

import atexit
import builtins
import collections
import json
import logging
import os
import signal
import string
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safehandler._records import Resource, plural
from safehandler._scope import IDLE
from safehandler.probes import _rotation
from safehandler.probes.globals import (
    COMMON_STDLIB,
    GlobalsProbe,
    allow_global,
)
from safehandler.probes.globals import _allow as allow_module
from safehandler.verdicts import IMMEDIATE_NOUNS, LeakTracker

MODULE = "sh_globals_handler"
HERE = __name__


def fake_dumps(obj: object, **kwargs: object) -> str:
    return "{}"


def fake_print(*args: object, **kwargs: object) -> None:
    pass


def on_usr1(signum: int, frame: object) -> None:
    pass


def noop() -> None:
    pass


def ours(obj: object, **kwargs: object) -> str:
    return ""


ours.__safehandler__ = True  # type: ignore[attr-defined]


class Client:
    def __repr__(self) -> str:
        return "Client()"


def cut_path(text: str) -> str:
    """A path as details show it: its end kept."""
    return text if len(text) <= 60 else "..." + text[-57:]


def cut(text: str) -> str:
    """Values in a detail are cut to 60 characters."""
    return text if len(text) <= 60 else text[:57] + "..."


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A throwaway module playing the handler's own module."""
    module = types.ModuleType(MODULE)
    module.CONSTANT = 42  # type: ignore[attr-defined]
    module.NAMES = ("a", "b")  # type: ignore[attr-defined]
    module.LIMITS = {"timeout": 3}  # type: ignore[attr-defined]
    module.ITEMS = []  # type: ignore[attr-defined]
    module.CLIENT = None  # type: ignore[attr-defined]
    module.CACHE = {}  # type: ignore[attr-defined]
    module.handle = lambda event: event  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, MODULE, module)
    return module


@pytest.fixture
def own_sys_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A private copy of sys.path: whatever a test does to it goes away with the copy."""
    path = list(sys.path)
    monkeypatch.setattr(sys, "path", path)
    return path


def invoke(
    probe: GlobalsProbe, action: Callable[[], object], invocation: int = 1
) -> list[Resource]:
    """What the engine does around one invocation."""
    before = probe.snapshot()
    action()
    after = probe.snapshot()
    return probe.diff(before, after, IDLE, invocation).added


def described(resources: list[Resource]) -> list[tuple[str, str, str]]:
    return [(res.kind, res.noun, res.detail) for res in resources]


# -- the probe's shape --------------------------------------------------------------------


def test_probe_shape_and_the_cheap_path(handler) -> None:
    probe = GlobalsProbe([MODULE])
    assert (probe.name, probe.counts_before, probe.holding) == ("globals", True, False)
    assert probe.carries_over  # the token after one invocation is the token before the next
    first = probe.snapshot()
    # Nothing moved: the very same token, so the engine's `after == before` is an identity test.
    assert probe.snapshot() is first
    assert probe.diff(first, first, IDLE, 1) == ([], [])


def test_immediate_nouns_are_everything_but_the_handlers_own_globals() -> None:
    assert {
        "growing cache",
        "stdlib attribute",
        "builtin",
        "sys.modules entry",
        "environment variable",
        "sys.path entry",
        "logging handler",
        "working directory",
        "signal handler",
        "atexit callback",
    } == IMMEDIATE_NOUNS
    assert "module global" not in IMMEDIATE_NOUNS
    assert plural("sys.path entry", 2) == "sys.path entries"


def test_changes_to_one_attribute_form_one_group_whatever_the_detail(handler) -> None:
    probe = GlobalsProbe([MODULE])
    first = invoke(probe, lambda: setattr(handler, "CLIENT", 1))
    second = invoke(probe, lambda: setattr(handler, "CLIENT", 2), 2)
    assert first[0].detail != second[0].detail
    assert first[0].group == second[0].group == ("global", "module global", (MODULE, "CLIENT"))


def test_the_plain_python_reading_finds_the_same(handler, monkeypatch) -> None:
    """Where gc.get_referents does not list a container's values (not CPython)."""
    monkeypatch.setattr(_rotation, "referents", _rotation._py_referents)
    probe = GlobalsProbe([MODULE])
    assert probe.snapshot() is probe.snapshot()

    def handle() -> None:
        monkeypatch.setattr(json, "dumps", fake_dumps)
        monkeypatch.setenv("SH_TEST_PLAIN", "1")
        handler.ITEMS.append(1)

    assert sorted(res.key for res in invoke(probe, handle)) == [
        ("environment variable", "SH_TEST_PLAIN"),
        ("json", "dumps"),
        (MODULE, "ITEMS"),
    ]


# -- stdlib attributes and builtins --------------------------------------------------------


def test_replaced_json_dumps_is_a_stdlib_attribute_change(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: monkeypatch.setattr(json, "dumps", fake_dumps))
    assert described(added) == [
        ("global", "stdlib attribute", f"json.dumps rebound: json.dumps -> {HERE}.fake_dumps")
    ]
    assert added[0].key == ("json", "dumps")
    assert added[0].site is None


def test_calling_json_dumps_is_clean(handler) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: json.dumps({"a": [1, 2]})) == []


def test_replaced_print_is_a_builtin_change(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: monkeypatch.setattr(builtins, "print", fake_print))
    assert described(added) == [
        ("global", "builtin", f"builtins.print rebound: builtins.print -> {HERE}.fake_print")
    ]


def test_calling_print_is_clean(handler, capsys) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: print("hello")) == []
    assert capsys.readouterr().out == "hello\n"


def test_safehandlers_own_wrappers_are_not_changes(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: monkeypatch.setattr(json, "dumps", ours)) == []


def test_allow_list_covers_stdlib_attributes(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE], allow=["json.dump*"])
    assert invoke(probe, lambda: monkeypatch.setattr(json, "dumps", fake_dumps)) == []


def test_stdlib_modules_outside_the_common_set_are_watched_in_deep_mode(monkeypatch) -> None:
    assert "textwrap" not in COMMON_STDLIB
    production, deep, everything = (
        GlobalsProbe([]),
        GlobalsProbe([], deep=True),
        GlobalsProbe([], stdlib="all"),
    )
    tokens = [probe.snapshot() for probe in (production, deep, everything)]
    monkeypatch.setattr(textwrap, "dedent", fake_print)
    found = [
        probe.diff(before, probe.snapshot(), IDLE, 1).added
        for probe, before in zip((production, deep, everything), tokens, strict=True)
    ]
    assert [len(resources) for resources in found] == [0, 1, 1]
    assert found[1][0].detail == f"textwrap.dedent rebound: textwrap.dedent -> {HERE}.fake_print"


class Unequal:
    """Compares with nothing: __eq__ raises, as numpy arrays and SQL expressions do."""

    def __eq__(self, other: object) -> bool:
        raise TypeError("no truth value")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "Unequal()"


def test_a_replacement_whose_eq_raises_is_still_seen(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: monkeypatch.setattr(json, "dumps", Unequal()))
    assert described(added) == [
        ("global", "stdlib attribute", f"json.dumps rebound: json.dumps -> <{HERE}.Unequal object>")
    ]
    added = invoke(probe, lambda: setattr(handler, "CLIENT", Unequal()), 2)
    assert [res.key for res in added] == [(MODULE, "CLIENT")]


def test_deleted_stdlib_attributes_are_reported_and_restored(monkeypatch) -> None:
    import socket

    original = socket.create_connection
    # json's namespace is compared whole, socket's (mostly constants) read by name
    probe = GlobalsProbe([], stdlib=["json", "socket"])
    assert [len(probe._stdlib.dense), len(probe._stdlib.sparse)] == [1, 1]
    before = probe.snapshot()
    monkeypatch.delattr(socket, "create_connection")
    monkeypatch.delattr(json, "loads")
    added = probe.diff(before, probe.snapshot(), IDLE, 1).added
    assert sorted(described(added)) == [
        ("global", "stdlib attribute", "json.loads deleted: was json.loads"),
        (
            "global",
            "stdlib attribute",
            "socket.create_connection deleted: was socket.create_connection",
        ),
    ]
    assert sorted(probe.restore(before)) == ["json.loads", "socket.create_connection"]
    assert socket.create_connection is original


def test_an_explicit_stdlib_list(monkeypatch) -> None:
    probe = GlobalsProbe([], stdlib=["textwrap"])
    added = invoke(probe, lambda: monkeypatch.setattr(textwrap, "dedent", fake_print))
    assert [res.key for res in added] == [("textwrap", "dedent")]
    assert invoke(probe, lambda: monkeypatch.setattr(json, "dumps", fake_dumps), 2) == []


# -- sys.modules ---------------------------------------------------------------------------


def test_a_replaced_module_is_reported_a_new_import_is_not(handler, monkeypatch) -> None:
    name = "sh_globals_other"
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: monkeypatch.setitem(sys.modules, name, types.ModuleType(name)))
    assert described(added) == [
        (
            "global",
            "sys.modules entry",
            f"sys.modules['{name}'] replaced: <module '{name}'> -> <module '{name}'>",
        )
    ]
    before = probe.snapshot()
    replaced = sys.modules[name]
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    assert probe.restore(before) == [f"sys.modules['{name}']"]
    assert sys.modules[name] is replaced
    fresh = "sh_globals_lazy"
    assert (
        invoke(probe, lambda: monkeypatch.setitem(sys.modules, fresh, types.ModuleType(fresh)))
        == []
    )


# -- os.environ ----------------------------------------------------------------------------


def test_environment_changes_are_reported_with_values_redacted(handler, monkeypatch) -> None:
    monkeypatch.setenv("SH_TEST_CHANGED", "before")
    monkeypatch.setenv("SH_TEST_REMOVED", "gone")
    probe = GlobalsProbe([MODULE])

    def handle() -> None:
        monkeypatch.setenv("SH_TEST_ADDED", "yes")
        monkeypatch.setenv("SH_TEST_CHANGED", "after")
        monkeypatch.delenv("SH_TEST_REMOVED")
        monkeypatch.setenv("SH_TEST_PASSWORD", "hunter2")
        monkeypatch.setenv("SH_TEST_URL", "mysql://app:hunter2@db:3306/orders")
        monkeypatch.setenv("SH_TEST_LONG", "x" * 100)

    added = invoke(probe, handle)
    assert described(added) == [
        ("global", "environment variable", "SH_TEST_ADDED added: 'yes'"),
        ("global", "environment variable", "SH_TEST_CHANGED changed: 'before' -> 'after'"),
        ("global", "environment variable", f"SH_TEST_LONG added: {cut(repr('x' * 100))}"),
        ("global", "environment variable", "SH_TEST_PASSWORD added: ***"),
        ("global", "environment variable", "SH_TEST_REMOVED removed: was 'gone'"),
        ("global", "environment variable", "SH_TEST_URL added: 'mysql://app:***@db:3306/orders'"),
    ]
    assert all("hunter2" not in res.detail for res in added)


def test_reading_the_environment_is_clean(handler) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: (os.environ.get("HOME"), os.getenv("PATH"))) == []


# -- sys.path --------------------------------------------------------------------------------


def test_sys_path_appended_per_invocation(handler, own_sys_path) -> None:
    probe = GlobalsProbe([MODULE])
    for invocation in (1, 2):
        added = invoke(probe, lambda: sys.path.append("/opt/sh-test"), invocation)
        assert described(added) == [("global", "sys.path entry", "'/opt/sh-test' added")]
        assert added[0].key == ("sys.path entry", "/opt/sh-test")


def test_sys_path_entries_removed_or_reordered(handler, own_sys_path) -> None:
    own_sys_path[:] = ["/a", "/b"]
    probe = GlobalsProbe([MODULE])
    assert described(invoke(probe, lambda: sys.path.remove("/a"))) == [
        ("global", "sys.path entry", "'/a' removed")
    ]
    assert described(invoke(probe, lambda: sys.path.insert(0, "/a"), 2)) == [
        ("global", "sys.path entry", "'/a' added")
    ]
    assert described(invoke(probe, sys.path.reverse, 3)) == [
        ("global", "sys.path entry", "reordered")
    ]


def test_reading_sys_path_is_clean(handler, own_sys_path) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: "/opt/sh-test" in sys.path) == []


# -- logging handlers ---------------------------------------------------------------------------


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("sh_test.app")
    existing = list(logger.handlers)
    yield logger
    for handler in list(logger.handlers):
        if handler not in existing:
            logger.removeHandler(handler)
            handler.close()


def test_a_file_handler_added_per_invocation(handler, app_logger, tmp_path) -> None:
    probe = GlobalsProbe([MODULE])
    log_file = tmp_path / "app.log"
    added = invoke(probe, lambda: app_logger.addHandler(logging.FileHandler(log_file, delay=True)))
    assert described(added) == [
        (
            "global",
            "logging handler",
            f"FileHandler to {cut_path(str(log_file))} added to logger 'sh_test.app'",
        )
    ]


def test_other_handlers_are_described_by_their_target_and_removal_counts(
    handler, app_logger
) -> None:
    import logging.handlers

    stream = logging.StreamHandler(types.SimpleNamespace(name="<audit>"))  # type: ignore[arg-type]
    app_logger.addHandler(stream)
    probe = GlobalsProbe([MODULE])

    def handle() -> None:
        app_logger.removeHandler(stream)
        app_logger.addHandler(logging.handlers.SocketHandler("localhost", 9))

    added = invoke(probe, handle)
    assert [res.detail for res in added] == [
        "SocketHandler to localhost:9 added to logger 'sh_test.app'",
        "StreamHandler to <audit> removed from logger 'sh_test.app'",
    ]


def test_logging_through_existing_handlers_is_clean(handler, app_logger, tmp_path) -> None:
    app_logger.addHandler(logging.FileHandler(tmp_path / "app.log", delay=True))
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: app_logger.warning("hello")) == []


# -- the handler's own globals ------------------------------------------------------------------


def test_a_list_that_grows_every_invocation_is_a_leak_at_the_second(handler) -> None:
    probe = GlobalsProbe([MODULE])
    tracker = LeakTracker(leak_after=2)
    findings = []
    for invocation in range(1, 6):
        added = invoke(probe, lambda: handler.ITEMS.append("event"), invocation)
        assert described(added) == [
            (
                "global",
                "module global",
                f"{MODULE}.ITEMS grew: {invocation - 1} -> {invocation} items",
            )
        ]
        findings += tracker.observe(invocation, added, [])
    assert [(f.invocation, f.count) for f in findings] == [(2, 2), (4, 4)]
    assert str(findings[0]) == (
        f"{MODULE}.ITEMS grew: 1 -> 2 items (module global, changed in 2 invocations since "
        "invocation 1), reported at invocation 2"
    )


def test_lazy_initialisation_is_tolerated_a_later_rebinding_is_not(handler) -> None:
    probe = GlobalsProbe([MODULE])
    tracker = LeakTracker(leak_after=2)

    def handle() -> None:
        if handler.CLIENT is None:
            handler.CLIENT = Client()
        if not hasattr(handler, "REGION"):
            handler.REGION = "eu-west-1"

    per_invocation = []
    findings = []
    for invocation in range(1, 6):
        added = invoke(probe, handle, invocation)
        per_invocation.append(described(added))
        findings += tracker.observe(invocation, added, [])
    assert per_invocation[0] == [
        ("global", "module global", f"{MODULE}.CLIENT rebound: None -> <{HERE}.Client object>"),
        ("global", "module global", f"{MODULE}.REGION added: 'eu-west-1'"),
    ]
    assert per_invocation[1:] == [[], [], [], []]
    assert findings == []
    # Reconnecting later is a second rebinding of the same global: growth.
    added = invoke(probe, lambda: setattr(handler, "CLIENT", Client()), 6)
    [finding] = tracker.observe(6, added, [])
    assert (finding.noun, finding.count, finding.invocation) == ("module global", 2, 6)
    assert (
        finding.detail
        == f"{MODULE}.CLIENT rebound: <{HERE}.Client object> -> <{HERE}.Client object>"
    )


def test_reading_module_constants_is_clean(handler) -> None:
    for probe in (GlobalsProbe([MODULE]), GlobalsProbe([MODULE], deep=True)):

        def handle() -> object:
            return (handler.CONSTANT, handler.NAMES, handler.LIMITS["timeout"], list(handler.ITEMS))

        assert [invoke(probe, handle, invocation) for invocation in range(1, 4)] == [[], [], []]


def test_new_and_deleted_names(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE])

    def handle() -> None:
        handler.EXTRA = 1
        del handler.CONSTANT

    added = invoke(probe, handle)
    assert described(added) == [
        ("global", "module global", f"{MODULE}.CONSTANT deleted: was 42"),
        ("global", "module global", f"{MODULE}.EXTRA added: 1"),
    ]


def test_secret_looking_globals_are_masked(handler) -> None:
    handler.API_TOKEN = "abc"
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: setattr(handler, "API_TOKEN", "def"))
    assert described(added) == [
        ("global", "module global", f"{MODULE}.API_TOKEN rebound: *** -> ***")
    ]


def test_a_handler_module_imported_during_the_invocation_is_baseline(monkeypatch) -> None:
    name = "sh_globals_late"
    probe = GlobalsProbe([name])

    def handle() -> None:
        module = types.ModuleType(name)
        module.STATE = []  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)

    assert invoke(probe, handle) == []
    module = sys.modules[name]
    added = invoke(probe, lambda: module.STATE.append(1), 2)  # type: ignore[attr-defined]
    assert described(added) == [("global", "module global", f"{name}.STATE grew: 0 -> 1 items")]


def test_deep_mode_sees_contents_that_keep_their_size(handler) -> None:
    handler.ITEMS.extend(["a", "b"])
    shallow, deep = GlobalsProbe([MODULE]), GlobalsProbe([MODULE], deep=True)
    tokens = [shallow.snapshot(), deep.snapshot()]
    handler.ITEMS[0] = "z"
    assert shallow.diff(tokens[0], shallow.snapshot(), IDLE, 1).added == []
    added = deep.diff(tokens[1], deep.snapshot(), IDLE, 1).added
    assert described(added) == [
        ("global", "module global", f"{MODULE}.ITEMS contents changed: 2 items")
    ]


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_deep_mode_on_every_container_kind_and_restore(handler) -> None:
    import collections

    handler.TAGS = {"a"}
    handler.BUFFER = bytearray(b"ab")
    handler.RECENT = collections.deque([1, 2])
    handler.ODD = [BadRepr()]  # no repr is asked: the item's identity is the fingerprint
    handler.HUGE = list(range(10_001))  # sampled, and too large to be copied for restore()
    probe = GlobalsProbe([MODULE], deep=True)
    before = probe.snapshot()
    before_odd = handler.ODD[0]

    handler.TAGS.symmetric_difference_update({"a", "b"})
    handler.BUFFER[0] = ord("z")
    handler.RECENT[0] = 9
    handler.ODD[0] = BadRepr()
    handler.HUGE[0] = -1  # in the sample (every 10th item)
    handler.HUGE[1] = -1  # not in it: a same-size change there is not seen
    added = probe.diff(before, probe.snapshot(), IDLE, 1).added
    assert [res.detail for res in added] == [
        f"{MODULE}.BUFFER contents changed: 2 items",
        f"{MODULE}.HUGE contents changed: 10001 items",
        f"{MODULE}.ODD contents changed: 1 items",
        f"{MODULE}.RECENT contents changed: 2 items",
        f"{MODULE}.TAGS contents changed: 1 items",
    ]
    # restore() takes out what was added ("b"), and leaves what was changed or removed
    assert probe.restore(before) == [f"{MODULE}.TAGS (1 added item removed)"]
    assert (handler.TAGS, handler.BUFFER, list(handler.RECENT)) == (set(), b"zb", [9, 2])
    handler.HUGE[0] = 0
    handler.TAGS.add("a")
    handler.BUFFER[0], handler.RECENT[0], handler.ODD[0] = ord("a"), 1, before_odd
    assert probe.diff(before, probe.snapshot(), IDLE, 2).added == []  # HUGE[1] is outside it


# -- allowed caches ----------------------------------------------------------------------------


def judged(
    probe: GlobalsProbe, tracker: LeakTracker, action: Callable[[], object], invocation: int
) -> list[tuple[str, str, str]]:
    """The findings of one invocation, as the verdicts judge the probe's changes."""
    findings = tracker.observe(invocation, invoke(probe, action, invocation), [])
    return [(f.kind, f.noun, f.detail) for f in findings]


def test_an_allow_listed_cache_is_reported_only_after_ten_growing_invocations(handler) -> None:
    probe = GlobalsProbe([MODULE], allow=[f"{MODULE}.*CACHE"])
    tracker = LeakTracker(2)
    for invocation in range(1, 10):
        grow = lambda key=invocation: handler.CACHE.update({key: "v"})  # noqa: E731
        assert judged(probe, tracker, grow, invocation) == []
    # Overwriting a key, rebinding the name: allowed, silently.
    assert invoke(probe, lambda: handler.CACHE.update({1: "w"}), 10) == []
    assert invoke(probe, lambda: setattr(handler, "CACHE", dict(handler.CACHE)), 11) == []
    for invocation in range(12, 21):
        grow = lambda key=invocation: handler.CACHE.update({key: "v"})  # noqa: E731
        assert judged(probe, tracker, grow, invocation) == []
    findings = tracker.observe(21, invoke(probe, lambda: handler.CACHE.update({21: "v"}), 21), [])
    assert [(f.kind, f.noun, f.detail) for f in findings] == [
        (
            "global",
            "growing cache",
            f"{MODULE}.CACHE grew in 10 consecutive invocations: 18 -> 19 items",
        )
    ]
    assert findings[0].group == ("global", "growing cache", (MODULE, "CACHE"))


def test_allow_global_marks_the_object_and_a_pause_resets_the_count(handler) -> None:
    handler.MEMO = allow_global({})
    probe = GlobalsProbe([MODULE])
    tracker = LeakTracker(2, allowed_growth_after=3)

    def grow() -> None:
        handler.MEMO[len(handler.MEMO)] = "v"

    assert judged(probe, tracker, grow, 1) == []
    assert judged(probe, tracker, grow, 2) == []
    # invocation 3 does not grow it (the engine does not even call diff())
    assert judged(probe, tracker, grow, 4) == []
    assert judged(probe, tracker, grow, 5) == []
    assert judged(probe, tracker, grow, 6) == [
        (
            "global",
            "growing cache",
            f"{MODULE}.MEMO grew in 3 consecutive invocations: 4 -> 5 items",
        )
    ]


def test_allow_global_returns_the_object_and_holds_dicts(handler) -> None:
    cache: dict[str, int] = {}
    assert allow_global(cache) is cache
    handler.CACHE = cache
    probe = GlobalsProbe([MODULE], deep=True)
    tracker = LeakTracker(2)
    assert judged(probe, tracker, lambda: cache.update(a=1), 1) == []
    # Rebinding a global to an allowed object is allowed too.
    assert invoke(probe, lambda: setattr(handler, "CLIENT", allow_global(Client())), 2) == []


def test_an_allowed_object_that_can_be_weakly_referenced_is_forgotten_with_it() -> None:
    client = allow_global(Client())
    key = id(client)
    assert allow_module.is_allowed(client)
    del client
    assert key not in allow_module._allowed


# -- working directory, signals, atexit ------------------------------------------------------------


def test_a_changed_working_directory(handler, monkeypatch, tmp_path) -> None:
    start = os.getcwd()
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: monkeypatch.chdir(tmp_path))
    assert described(added) == [
        ("global", "working directory", f"changed: {cut(start)} -> {cut(os.getcwd())}")
    ]


def test_reading_the_working_directory_is_clean(handler) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, os.getcwd) == []


@pytest.fixture
def usr1() -> Iterator[None]:
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGUSR1, previous)


def test_a_replaced_signal_handler(handler, usr1) -> None:
    probe = GlobalsProbe([MODULE])
    added = invoke(probe, lambda: signal.signal(signal.SIGUSR1, on_usr1))
    assert described(added) == [
        ("global", "signal handler", f"SIGUSR1 replaced: SIG_DFL -> {HERE}.on_usr1")
    ]


def test_reading_a_signal_handler_is_clean(handler, usr1) -> None:
    probe = GlobalsProbe([MODULE])
    assert invoke(probe, lambda: signal.getsignal(signal.SIGUSR1)) == []


def test_an_atexit_registration(handler) -> None:
    probe = GlobalsProbe([MODULE])
    try:
        added = invoke(probe, lambda: atexit.register(noop))
    finally:
        atexit.unregister(noop)
    assert described(added) == [
        ("global", "atexit callback", "registered during the invocation (atexit cannot be undone)")
    ]


# -- the rotation of the shared state -----------------------------------------------------


def rotate_until_seen(probe: GlobalsProbe, action: Callable[[], object]) -> list[Resource]:
    """Invocation 1 runs ``action``; then empty invocations until the token moves. What the
    diff reports at that invocation, with its number checked against the rotation's bound."""
    before = probe.snapshot()
    action()
    for invocation in range(1, probe.every + 1):
        after = probe.snapshot()
        if after is not before:
            added = probe.diff(before, after, IDLE, invocation).added
            assert all(res.invocation == invocation for res in added)
            return added
    raise AssertionError(f"not seen in {probe.every} invocations")


@pytest.mark.parametrize(
    "change",
    ["json.dumps", "builtins.print", "os.environ", "sys.path", "cwd", "signal", "logging"],
)
def test_every_slice_of_the_shared_state_comes_round_within_every_invocations(
    change, handler, monkeypatch, own_sys_path, tmp_path, app_logger, usr1
) -> None:
    actions: dict[str, Callable[[], object]] = {
        "json.dumps": lambda: monkeypatch.setattr(json, "dumps", fake_dumps),
        "builtins.print": lambda: monkeypatch.setattr(builtins, "print", fake_print),
        "os.environ": lambda: monkeypatch.setenv("SH_TEST_ROTATION", "1"),
        "sys.path": lambda: own_sys_path.append("/opt/rotation"),
        "cwd": lambda: monkeypatch.chdir(tmp_path),
        "signal": lambda: signal.signal(signal.SIGUSR1, on_usr1),
        "logging": lambda: app_logger.addHandler(logging.NullHandler()),
    }
    probe = GlobalsProbe([MODULE], every=8)
    added = rotate_until_seen(probe, actions[change])
    [res] = added
    assert res.noun in IMMEDIATE_NOUNS
    seen_at = res.invocation
    if seen_at > 1:  # seen late: the report says in which invocations it was made
        assert res.detail.endswith(
            f" (made in invocation 1 to {seen_at}: the shared state is checked in turn over "
            "8 invocations)"
        )
    else:
        assert "checked in turn" not in res.detail


def test_a_module_loaded_later_joins_the_rotation(handler, monkeypatch) -> None:
    late = types.ModuleType("sh_late_module")
    late.render = noop  # type: ignore[attr-defined]
    probe = GlobalsProbe([MODULE], stdlib={"sh_late_module"}, every=8)
    probe.snapshot()
    monkeypatch.setitem(sys.modules, "sh_late_module", late)  # an import: a new layout
    assert rotate_until_seen(probe, lambda: None) == []  # a new module is no finding
    added = rotate_until_seen(probe, lambda: monkeypatch.setattr(late, "render", fake_print))
    assert [(res.noun, res.key) for res in added] == [
        ("stdlib attribute", ("sh_late_module", "render"))
    ]


def test_a_token_rebuilt_for_the_handler_alone_keeps_the_rotation_watching(
    handler, monkeypatch
) -> None:
    """A leak in the handler's globals rebuilds the token without reading the slices again:
    the ones it keeps must still see a monkeypatch made afterwards."""
    probe = GlobalsProbe([MODULE], every=8)
    first = probe.snapshot()
    handler.ITEMS.append(1)
    rebuilt = probe.snapshot()
    assert rebuilt is not first
    assert rebuilt.slices is first.slices  # nothing shared moved: not read again
    added = rotate_until_seen(probe, lambda: monkeypatch.setattr(json, "dumps", fake_dumps))
    assert [(res.noun, res.key) for res in added] == [("stdlib attribute", ("json", "dumps"))]


def test_the_handlers_own_globals_are_checked_by_every_snapshot(handler) -> None:
    probe = GlobalsProbe([MODULE], every=8)
    for invocation in range(1, 10):
        [res] = invoke(probe, lambda: handler.ITEMS.append(1), invocation)
        assert (res.noun, res.key, res.invocation) == (
            "module global",
            (MODULE, "ITEMS"),
            invocation,
        )
        assert "checked in turn" not in res.detail


def test_each_snapshot_reads_a_slice_of_about_an_eighth(handler) -> None:
    """A partition of the shared state into 8 slices, balanced unless one source (often
    sys.modules) alone outweighs an eighth: it cannot be split."""
    whole = GlobalsProbe([MODULE])
    whole.snapshot()
    rotating = GlobalsProbe([MODULE], every=8)
    rotating.snapshot()
    [everything] = whole._rotation.slices
    slices = rotating._rotation.slices
    assert len(slices) == 8
    # a partition: every source and reader in exactly one slice
    assert sorted(map(id, everything.sources)) == sorted(
        id(source) for part in slices for source in part.sources
    )
    assert len(everything.readers) == sum(len(part.readers) for part in slices)
    entries = [len(part.read()[0]) for part in slices]
    largest = max(len(_rotation.referents(source)) for source in everything.sources)
    assert max(entries) <= max(largest, len(everything.read()[0]) / 4), entries


# -- restore ---------------------------------------------------------------------------------------


def test_restore_puts_everything_back(
    handler, monkeypatch, own_sys_path, tmp_path, app_logger, usr1
) -> None:
    original_dumps, original_print = json.dumps, builtins.print
    monkeypatch.setenv("SH_TEST_KEPT", "old")
    path_before, cwd_before = list(sys.path), os.getcwd()
    probe = GlobalsProbe([MODULE])
    before = probe.snapshot()

    monkeypatch.setattr(json, "dumps", fake_dumps)
    monkeypatch.setattr(builtins, "print", fake_print)
    monkeypatch.setenv("SH_TEST_LEAK", "yes")
    monkeypatch.setenv("SH_TEST_KEPT", "new")
    sys.path.append("/opt/sh-test")
    monkeypatch.chdir(tmp_path)
    handler.CLIENT = Client()
    handler.EXTRA = 1
    handler.ITEMS.append(1)  # a mutation: put back only in deep mode
    file_handler = logging.FileHandler(tmp_path / "app.log", delay=True)
    app_logger.addHandler(file_handler)
    signal.signal(signal.SIGUSR1, on_usr1)

    restored = probe.restore(before)

    assert json.dumps is original_dumps
    assert builtins.print is original_print
    assert "SH_TEST_LEAK" not in os.environ
    assert os.environ["SH_TEST_KEPT"] == "old"
    assert sys.path == path_before
    assert os.getcwd() == cwd_before
    assert isinstance(handler.CLIENT, Client)  # rebound: the handler's choice, kept
    assert not hasattr(handler, "EXTRA")
    assert handler.ITEMS == [1]
    assert file_handler not in app_logger.handlers
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert sorted(restored) == sorted(
        [
            f"{MODULE}.EXTRA (deleted)",
            "builtins.print",
            "json.dumps",
            "os.environ['SH_TEST_KEPT']",
            "os.environ['SH_TEST_LEAK']",
            "sys.path entry '/opt/sh-test'",
            f"logging handler FileHandler to {cut_path(str(tmp_path / 'app.log'))} "
            "removed from logger 'sh_test.app'",
            "working directory",
            "signal handler SIGUSR1",
        ]
    )
    # Only the list's growth (no copy outside deep mode) and the new client are left.
    after = probe.snapshot()
    assert [res.key for res in probe.diff(before, after, IDLE, 1).added] == [
        (MODULE, "CLIENT"),
        (MODULE, "ITEMS"),
    ]


def test_restore_removes_only_what_the_invocation_added(handler) -> None:
    import collections as c

    handler.ITEMS.extend(["a", "b"])
    handler.RECENT = c.deque([1])
    handler.TAGS = {"t"}
    items, limits = handler.ITEMS, handler.LIMITS
    probe = GlobalsProbe([MODULE], keep_contents=True)
    before = probe.snapshot()
    handler.ITEMS.append("c")  # appended: removed
    handler.LIMITS["timeout"] = 30  # changed: the handler's update, kept
    handler.LIMITS["retries"] = 2  # added: removed
    handler.RECENT.extend([2, 3])
    handler.TAGS.add("u")
    handler.CACHE = {"replaced": True}  # rebound: kept, the old one is not reinstated
    assert sorted(probe.restore(before)) == [
        f"{MODULE}.ITEMS (1 added item removed)",
        f"{MODULE}.LIMITS (1 added item removed)",
        f"{MODULE}.RECENT (2 added items removed)",
        f"{MODULE}.TAGS (1 added item removed)",
    ]
    assert (handler.ITEMS, handler.LIMITS) == (["a", "b"], {"timeout": 30})
    assert (handler.ITEMS is items, handler.LIMITS is limits) == (True, True)
    assert (list(handler.RECENT), handler.TAGS) == ([1], {"t"})
    assert handler.CACHE == {"replaced": True}


def test_restore_leaves_a_list_whose_old_items_moved(handler) -> None:
    handler.ITEMS.extend(["a", "b"])
    probe = GlobalsProbe([MODULE], keep_contents=True)
    before = probe.snapshot()
    handler.ITEMS.insert(0, "new")  # not an append: which item is new is not certain
    assert probe.restore(before) == []
    assert handler.ITEMS == ["new", "a", "b"]


def test_restore_leaves_allowed_state_and_can_be_limited(handler, monkeypatch) -> None:
    probe = GlobalsProbe([MODULE], allow=[f"{MODULE}.CACHE"])
    before = probe.snapshot()
    handler.CACHE = {"kept": True}
    handler.CLIENT = Client()
    monkeypatch.setattr(json, "dumps", fake_dumps)
    # The tracker judged only the stdlib change a leak: the lazily made client stays.
    assert probe.restore(before, only={("json", "dumps")}) == ["json.dumps"]
    assert handler.CACHE == {"kept": True}
    assert isinstance(handler.CLIENT, Client)


def test_restore_with_nothing_changed_does_nothing(handler) -> None:
    probe = GlobalsProbe([MODULE], deep=True)
    assert probe.restore(probe.snapshot()) == []


# -- properties ------------------------------------------------------------------------------------

_NAMES = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=8)
_VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=80,
)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(_NAMES, st.none() | _VALUES, max_size=6))
def test_environment_changes_are_reported_once_each_and_restored(changes) -> None:
    saved = dict(os.environ)
    probe = GlobalsProbe([], stdlib=())
    try:
        before = probe.snapshot()
        for name, value in changes.items():
            if value is not None:
                os.environ["SH_PROP_" + name] = value
        added = probe.diff(before, probe.snapshot(), IDLE, 1).added
        assert sorted(res.key for res in added) == sorted(
            ("environment variable", "SH_PROP_" + name)
            for name, value in changes.items()
            if value is not None
        )
        for res in added:
            value = res.detail.split(" added: ", 1)[1]
            assert len(value) <= 60
        probe.restore(before)
        assert dict(os.environ) == saved
    finally:
        for name in changes:
            os.environ.pop("SH_PROP_" + name, None)


@settings(max_examples=50, deadline=None)
@given(
    password=st.text(alphabet=string.digits, min_size=4, max_size=12),
    prefix=st.text(alphabet=string.ascii_lowercase, max_size=70),
)
def test_a_dsn_in_a_global_never_shows_its_password(password, prefix) -> None:
    module = types.ModuleType("sh_globals_prop")
    module.DSN = None  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        probe = GlobalsProbe([module.__name__], stdlib=())
        before = probe.snapshot()
        module.DSN = f"{prefix}mysql://app:{password}@db/orders"  # type: ignore[attr-defined]
        [res] = probe.diff(before, probe.snapshot(), IDLE, 1).added
        assert password not in res.detail
        assert len(res.detail.split(" -> ", 1)[1]) <= 60
    finally:
        del sys.modules[module.__name__]


# -- packages vendored beside the handler (pip install -t .) are libraries ----------------


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Lambda task root as `pip install -t .` leaves it: a real install of a small
    pure-Python package (the version the dev extra already has), with its dist-info."""
    import importlib.metadata
    import subprocess

    root = tmp_path_factory.mktemp("task")
    version = importlib.metadata.version("iniconfig")
    env = {**os.environ, "TMPDIR": str(tmp_path_factory.getbasetemp())}
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--no-deps", "--target", str(root), f"iniconfig=={version}"],
        check=True,
        env=env,
        capture_output=True,
    )
    (root / "sh_vendored_app.py").write_text(
        textwrap.dedent(
            """\
            import iniconfig

            SEEN = []

            def handler(event, context):
                # a library's lazy module state, filled inside the invocation
                vars(iniconfig).setdefault("_REGISTRY", []).append(event)
                iniconfig.LAST = event
                if event.get("leak"):
                    SEEN.append(event)
                return len(SEEN)
            """
        )
    )
    return str(root)


@pytest.fixture
def vendored_app(task_root: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The handler imported from the task root, with the vendored copy of iniconfig (pytest's
    own copy is put back afterwards, and nothing imported from the task root stays)."""
    import importlib

    saved = dict(sys.modules)
    for name in [name for name in sys.modules if name.partition(".")[0] == "iniconfig"]:
        del sys.modules[name]
    monkeypatch.syspath_prepend(task_root)
    try:
        module = importlib.import_module("sh_vendored_app")
        assert module.iniconfig.__file__.startswith(task_root)
        yield module
    finally:
        for name in [name for name in sys.modules if name not in saved]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_installed_distributions_name_their_top_level_packages(task_root, tmp_path) -> None:
    from safehandler.probes.globals._vendored import vendored_names

    assert vendored_names(task_root) == {"iniconfig"}  # from its RECORD
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "__init__.py").write_text("")
    (tmp_path / "legacy-1.0-py3.11.egg-info").mkdir()
    (tmp_path / "legacy-1.0-py3.11.egg-info" / "top_level.txt").write_text("legacy\n")
    (tmp_path / "app.py").write_text("")
    assert vendored_names(str(tmp_path)) == {"legacy"}  # an egg's top_level.txt
    assert vendored_names(str(tmp_path / "missing")) == frozenset()


def test_a_vendored_package_is_a_library_not_the_handler(guarded, vendored_app) -> None:
    from safehandler.probes.globals import handler_modules

    watched = handler_modules(vendored_app.handler)
    assert "sh_vendored_app" in watched
    assert not [name for name in watched if name.partition(".")[0] == "iniconfig"]
    guard = guarded(vendored_app.handler, mode="strict")
    assert guard(3) == [0, 0, 0]  # the library's registry grew three times: no finding
    assert len(vendored_app.iniconfig._REGISTRY) == 3
    guard = guarded(vendored_app.handler)
    guard(1, event={"leak": 1})
    guard(1, event={"leak": 2})  # the handler's own global is still watched
    assert [(f.noun, f.detail) for f in guard.findings] == [
        ("module global", "sh_vendored_app.SEEN grew: 1 -> 2 items")
    ]


# -- bounded cost: no user code, a sample per container, a budget per snapshot -------------


class Trap:
    """Counts every call of the methods a careless watcher would run."""

    calls: ClassVar[collections.Counter[str]] = collections.Counter()

    def __eq__(self, other: object) -> bool:
        Trap.calls["__eq__"] += 1
        return False

    def __hash__(self) -> int:
        Trap.calls["__hash__"] += 1
        return 1

    def __repr__(self) -> str:
        Trap.calls["__repr__"] += 1
        return "Trap()"

    def __lt__(self, other: object) -> bool:
        Trap.calls["__lt__"] += 1
        return True

    def __getattr__(self, name: str) -> object:
        Trap.calls["__getattr__"] += 1
        raise AttributeError(name)


class TrapDict(dict):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[object]:
        Trap.calls["dict.__iter__"] += 1
        return super().__iter__()

    def items(self) -> object:  # type: ignore[override]
        Trap.calls["dict.items"] += 1
        return super().items()

    def values(self) -> object:  # type: ignore[override]
        Trap.calls["dict.values"] += 1
        return super().values()

    def __repr__(self) -> str:
        Trap.calls["dict.__repr__"] += 1
        return "TrapDict()"


class TrapHandler(logging.Handler):
    @property
    def host(self) -> str:
        Trap.calls["host"] += 1
        return "h"


def test_watching_and_describing_run_no_user_code(handler, app_logger) -> None:
    Trap.calls.clear()
    handler.TRAPS = TrapDict({key: Trap() for key in range(600)})
    handler.ITEMS.append(Trap())
    probe = GlobalsProbe([MODULE], deep=True)
    details = []
    for invocation in range(1, 21):

        def handle(key: int = 1000 + invocation) -> None:
            handler.CLIENT = Trap()  # a new client per call: rebound every time
            handler.TRAPS[key] = [Trap()]
            handler.ITEMS[0] = Trap()
            handler.NESTED = {"a": [Trap()], "b": (Trap(), "x")}

        details += [res.detail for res in invoke(probe, handle, invocation)]
    details += [res.detail for res in invoke(probe, lambda: app_logger.addHandler(TrapHandler()))]
    here = f"<{HERE}.Trap object>"
    assert f"{MODULE}.CLIENT rebound: None -> {here}" in details
    assert f"{MODULE}.CLIENT rebound: {here} -> {here}" in details
    # cut to 60 characters: "{'a': [<tests.test_globals_probe.Trap object>], 'b': (..."
    assert cut(f"{{'a': [{here}], 'b': ({here}, 'x')}}") in [
        detail.partition("NESTED added: ")[2] for detail in details
    ]
    assert f"{MODULE}.ITEMS contents changed: 1 items" in details
    assert "TrapHandler added to logger 'sh_test.app'" in details
    # The first rebinding away from None is the one `==` the cheap path makes; from then on
    # the handler's globals are compared by identity.
    assert Trap.calls == {"__eq__": 1}


def test_a_fingerprint_samples_1024_items_and_a_snapshot_16_containers() -> None:
    import collections as c

    from safehandler.probes.globals import _handler_state as state

    large: list[object] = [
        dict.fromkeys(range(10_000)),
        list(range(10_000)),
        c.deque(range(10_000)),
        set(range(10_000)),
    ]
    assert [len(state.sample(obj)) for obj in large] == [1024, 1000, 1024, 1024]
    assert len(state.sample({1: 2, 3: 4})) == 4  # a small dict: its keys and values
    containers = tuple(list(range(5_000)) for _ in range(20))
    prints = state.fingerprints(containers)
    assert sum(printed is not None for printed in prints) == state.BUDGET // state.SAMPLE == 16
    assert prints[16:] == (None,) * 4  # past the budget: watched by their size only


def test_a_soak_of_a_10000_key_global_reads_a_bounded_sample(monkeypatch) -> None:
    from safehandler.probes.globals import _handler_state as state
    from safehandler.testing import soak

    read: list[int] = []
    real_sample = state.sample

    def counted(obj: object) -> list[object]:
        items = real_sample(obj)
        read.append(len(items))
        return items

    monkeypatch.setattr(state, "sample", counted)
    module = types.ModuleType("sh_globals_large")
    module.__file__ = "/var/task/sh_globals_large.py"
    module.STATE = {f"key{i}": [i, [i]] for i in range(10_000)}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sh_globals_large", module)
    exec("def handler(event, context):\n    return len(STATE)\n", vars(module))
    report = soak(module.handler, invocations=60)
    assert report.findings == []
    assert len(read) >= 60  # deep mode: a fingerprint per invocation
    assert max(read) == 1024  # the 10,000 keys are never all read


def test_describing_stops_after_256_values_per_invocation(handler) -> None:
    from safehandler.probes.globals._handler_state import DESCRIBED

    probe = GlobalsProbe([MODULE])

    def handle() -> None:
        for n in range(DESCRIBED + 10):
            setattr(handler, f"NEW_{n:04d}", n)

    details = [res.detail for res in invoke(probe, handle)]
    assert len(details) == DESCRIBED + 10
    assert details[0] == f"{MODULE}.NEW_0000 added: 0"
    assert details[DESCRIBED] == f"{MODULE}.NEW_{DESCRIBED:04d} added"  # no value past it
