"""What the handler's functions and classes hold, through the decorator: mutable defaults,
function and class attributes, closure cells, an unbounded lru_cache. Each leaks on purpose
with its exact finding, beside a clean twin. The handler module is a real file in tmp_path,
imported as a Lambda task root's app.py would be."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safehandler.probes.globals import GlobalsProbe
from safehandler.report import advice

_names = itertools.count()
MUTABLE_DEFAULT_FIX = "do not use a mutable default"
CACHE_FIX = "bound it (functools.lru_cache(maxsize=...)"


@pytest.fixture
def load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., types.ModuleType]]:
    """Write ``source`` to a module file of its own in tmp_path and import it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded: list[str] = []

    def make(source: str) -> types.ModuleType:
        name = f"sh_owned_app_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        loaded.append(name)
        return importlib.import_module(name)

    yield make
    for name in loaded:
        sys.modules.pop(name, None)


def summary(findings: list) -> list[tuple[str, str, int, int, str]]:  # type: ignore[type-arg]
    return [(f.kind, f.noun, f.count, f.invocation, f.detail) for f in findings]


# -- mutable defaults -----------------------------------------------------------------------


def test_a_mutable_default_that_grows_is_a_leak(guarded, load) -> None:
    app = load(
        """
        def handler(event, context, _seen=[]):
            _seen.append(event)
            return len(_seen)
        """
    )
    guard = guarded(app.handler)
    assert guard(5) == [1, 2, 3, 4, 5]
    name = app.__name__
    assert summary(guard.findings) == [
        ("global", "mutable default", 2, 2, f"{name}.handler.__defaults__[0] grew: 1 -> 2 items"),
        ("global", "mutable default", 4, 4, f"{name}.handler.__defaults__[0] grew: 3 -> 4 items"),
    ]
    assert advice(guard.findings[0]).startswith(MUTABLE_DEFAULT_FIX)


def test_a_keyword_default_that_grows_is_a_leak(guarded, load) -> None:
    app = load(
        """
        def handler(event, context, *, _by_id={}):
            _by_id[len(_by_id)] = event
        """
    )
    guard = guarded(app.handler)
    guard(2)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.count, finding.detail) == (
        "global",
        "mutable default",
        2,
        f"{app.__name__}.handler.__kwdefaults__['_by_id'] grew: 1 -> 2 items",
    )


def test_defaults_read_or_made_per_call_are_clean(guarded, load) -> None:
    app = load(
        """
        def handler(event, context, _limits={"timeout": 3}, _seen=None):
            seen = [] if _seen is None else _seen
            seen.append(event)
            return _limits["timeout"]
        """
    )
    guard = guarded(app.handler)
    assert guard(5) == [3] * 5
    assert guard.findings == []


# -- function and class attributes ----------------------------------------------------------


def test_a_function_attribute_cache_that_grows_is_a_leak(guarded, load) -> None:
    app = load(
        """
        def lookup(key):
            lookup.cache[key] = key
            return key

        lookup.cache = {}

        def handler(event, context):
            return lookup(len(lookup.cache))
        """
    )
    guard = guarded(app.handler)
    guard(2)
    [finding] = guard.findings
    assert (finding.noun, finding.count, finding.detail) == (
        "module global",
        2,
        f"{app.__name__}.lookup.cache grew: 1 -> 2 items",
    )
    assert advice(finding).startswith(CACHE_FIX)


def test_a_function_attribute_rebound_per_call_is_a_leak(guarded, load) -> None:
    app = load(
        """
        def handler(event, context):
            handler.calls = handler.__dict__["calls"] + 1

        handler.calls = 0
        """
    )
    guard = guarded(app.handler)
    guard(2)
    [finding] = guard.findings
    assert (finding.noun, finding.count, finding.invocation, finding.detail) == (
        "module global",
        2,
        2,
        f"{app.__name__}.handler.calls rebound: 1 -> 2",
    )


def test_a_class_attribute_that_grows_or_is_rebound_per_call_is_a_leak(guarded, load) -> None:
    app = load(
        """
        class Registry:
            items = []
            last = None

        def handler(event, context):
            Registry.items.append(event)
            Registry.last = len(Registry.items)
        """
    )
    guard = guarded(app.handler)
    guard(2)
    name = app.__name__
    assert sorted((f.noun, f.count, f.detail) for f in guard.findings) == [
        ("module global", 2, f"{name}.Registry.items grew: 1 -> 2 items"),
        ("module global", 2, f"{name}.Registry.last rebound: 1 -> 2"),
    ]


def test_attributes_set_once_and_read_are_clean(guarded, load) -> None:
    app = load(
        """
        class Registry:
            items = ["a", "b"]
            client = None

        def handler(event, context):
            if Registry.client is None:
                Registry.client = object()  # lazy initialisation, once
            if not hasattr(handler, "region"):
                handler.region = "eu-west-1"
            return len(Registry.items)
        """
    )
    guard = guarded(app.handler)
    assert guard(5) == [2] * 5
    assert guard.findings == []


# -- closure cells --------------------------------------------------------------------------


def test_a_closure_list_that_grows_is_a_leak(guarded, load) -> None:
    app = load(
        """
        def make():
            seen = []
            def handler(event, context):
                seen.append(event)
            return handler

        handler = make()
        """
    )
    guard = guarded(app.handler)
    guard(2)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.count, finding.detail) == (
        "global",
        "module global",
        2,
        f"{app.__name__}.handler closure 'seen' grew: 1 -> 2 items",
    )


def test_a_cell_rebound_by_nonlocal_per_call_is_a_leak(guarded, load) -> None:
    app = load(
        """
        def make():
            count = 0
            def handler(event, context):
                nonlocal count
                count += 1
                return count
            return handler

        handler = make()
        """
    )
    guard = guarded(app.handler)
    assert guard(2) == [1, 2]
    [finding] = guard.findings
    assert (finding.noun, finding.count, finding.detail) == (
        "module global",
        2,
        f"{app.__name__}.handler closure 'count' rebound: 1 -> 2",
    )


def test_a_closure_read_only_is_clean(guarded, load) -> None:
    app = load(
        """
        def make():
            limits = {"timeout": 3}
            client = None
            def handler(event, context):
                nonlocal client
                if client is None:
                    client = object()  # lazy initialisation, once
                return limits["timeout"]
            return handler

        handler = make()
        """
    )
    guard = guarded(app.handler)
    assert guard(5) == [3] * 5
    assert guard.findings == []


# -- functools.lru_cache --------------------------------------------------------------------


def test_an_unbounded_lru_cache_that_grows_is_a_leak(guarded, load) -> None:
    app = load(
        """
        import functools

        @functools.lru_cache(maxsize=None)
        def lookup(key):
            return key * 2

        def handler(event, context):
            handler.n = getattr(handler, "n", 0)
            return lookup(lookup.cache_info().currsize)
        """
    )
    guard = guarded(app.handler)
    guard(5)
    name = app.__name__
    assert summary(guard.findings) == [
        ("global", "module global", 2, 2, f"{name}.lookup lru_cache grew: 1 -> 2 items"),
        ("global", "module global", 4, 4, f"{name}.lookup lru_cache grew: 3 -> 4 items"),
    ]
    assert advice(guard.findings[0]).startswith(CACHE_FIX)


def test_a_bounded_or_hit_lru_cache_is_clean(guarded, load) -> None:
    app = load(
        """
        import functools

        @functools.lru_cache(maxsize=4)
        def bounded(key):
            return key

        @functools.lru_cache(maxsize=None)
        def constant(key):
            return key

        def handler(event, context):
            handler.n = handler.__dict__.get("n", 0)  # the same value: no rebinding
            bounded(bounded.cache_info().misses)  # a new key per call, past the bound
            return constant("region")  # the same key: filled once, then hit
        """
    )
    guard = guarded(app.handler)
    assert guard(10) == ["region"] * 10
    assert guard.findings == []
    assert app.bounded.cache_info().currsize == 4


def test_an_allowed_lru_cache_is_judged_by_its_streak(guarded, load) -> None:
    app = load(
        """
        import functools
        import safehandler

        @safehandler.allow_global
        @functools.lru_cache(maxsize=None)
        def lookup(key):
            return key

        def handler(event, context):
            return lookup(lookup.cache_info().currsize)
        """
    )
    guard = guarded(app.handler)
    guard(5)
    assert guard.findings == []  # growth in five invocations: not yet ten in a row


# -- the guard's own wrapper, restore, cost ----------------------------------------------


def test_a_handler_guarded_in_its_module_is_watched_through_the_wrapper(guarded, load) -> None:
    app = load(
        """
        import safehandler

        @safehandler.guard(mode="report")
        def handler(event, context, _seen=[]):
            _seen.append(event)
        """
    )
    guard = guarded(app.handler)
    guard(2)
    assert [(f.noun, f.detail) for f in guard.findings] == [
        ("mutable default", f"{app.__name__}.handler.__defaults__[0] grew: 1 -> 2 items")
    ]


def test_restore_puts_back_what_defaults_attributes_and_cells_gained(guarded, load) -> None:
    app = load(
        """
        import functools

        class Registry:
            items = []

        def make():
            seen = []
            def inner(event):
                seen.append(event)
                return len(seen)
            return inner

        inner = make()

        @functools.lru_cache(maxsize=None)
        def lookup(key):
            return key

        def handler(event, context, _seen=[]):
            _seen.append(event["n"])
            Registry.items.append(event["n"])
            lookup(event["n"])
            return len(_seen), len(Registry.items), inner(event["n"])
        """
    )
    guard = guarded(app.handler, isolation="restore")
    answers = [guard(1, event={"n": n})[0] for n in range(6)]
    # the first invocation is one change (a lazy fill's shape); from the second each is undone
    assert answers == [(1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert app.handler.__defaults__ == ([0],)
    assert app.Registry.items == [0]
    # an lru_cache's entries are not put back (its bookkeeping lives in C)
    assert app.lookup.cache_info().currsize == 6


def test_the_owners_are_found_when_the_state_is_read_not_per_invocation(load) -> None:
    source = "".join(
        f"def f{i}(event, context, _seen=[]):\n    return _seen\n\n" for i in range(50)
    )
    app = load(source)
    probe = GlobalsProbe([app.__name__])
    first = probe.snapshot()
    owners = probe._owners
    assert len(owners.owners) == 50  # each function, its (empty) dict as a source
    for _ in range(3):
        assert probe.snapshot() is first  # the steady state: the same token
    assert probe._owners is owners
    app.f7.__defaults__[0].append(1)
    assert probe.snapshot() is not first
    assert probe._owners is owners  # a container grew: the functions are as they were
    app.f8 = app.f7
    probe.snapshot()
    assert probe._owners is not owners  # a global rebound: found again


def test_a_static_method_default_and_a_method_cache_are_watched(guarded, load) -> None:
    app = load(
        """
        import functools

        class Store:
            @staticmethod
            def put(key, _keys=[]):
                _keys.append(key)

            @functools.lru_cache(maxsize=None)
            def get(self, key):
                return key

        STORE = Store()

        def handler(event, context):
            Store.put(event["n"])
            return STORE.get(event["n"])
        """
    )
    guard = guarded(app.handler)
    assert [guard(1, event={"n": n})[0] for n in range(2)] == [0, 1]
    name = app.__name__
    assert sorted((f.noun, f.count, f.detail) for f in guard.findings) == [
        ("module global", 2, f"{name}.Store.get lru_cache grew: 1 -> 2 items"),
        ("mutable default", 2, f"{name}.Store.put.__defaults__[0] grew: 1 -> 2 items"),
    ]


def test_an_allow_list_by_the_functions_name_covers_what_it_holds(guarded, load) -> None:
    app = load(
        """
        def handler(event, context, _seen=[]):
            _seen.append(event)
        """
    )
    guard = guarded(app.handler, allow_globals=[f"{app.__name__}.handler"])
    guard(5)
    assert guard.findings == []  # an allowed cache: only ten growing invocations in a row


def test_restore_deletes_a_function_attribute_added_per_call(guarded, load) -> None:
    app = load(
        """
        def handler(event, context):
            handler.__dict__[f"seen_{event['n']}"] = True
            return sorted(name for name in handler.__dict__ if name.startswith("seen_"))
        """
    )
    guard = guarded(app.handler, isolation="restore")
    answers = [guard(1, event={"n": n})[0] for n in range(4)]
    assert answers[-1] == ["seen_0", "seen_3"]  # each new one is put back once judged a leak
    assert [name for name in vars(app.handler) if name.startswith("seen_")] == ["seen_0"]
    assert guard.findings[0].detail == f"{app.__name__}.handler.seen_1 added: True"


def test_user_code_is_not_run_by_watching(guarded, load) -> None:
    app = load(
        """
        class Loud(type):
            def __getattribute__(cls, name):
                raise RuntimeError("metaclass code ran")

        class Quiet(metaclass=Loud):
            items = []

        class Name:
            def __eq__(self, other):
                raise RuntimeError("__eq__ ran")
            __hash__ = object.__hash__

        def odd(_seen=[]):
            return _seen

        odd.__module__ = Name()

        def handler(event, context, _seen=[]):
            _seen.append(event)
            type.__getattribute__(Quiet, "items").append(event)
            return len(_seen)
        """
    )
    guard = guarded(app.handler)
    assert guard(2) == [1, 2]
    name = app.__name__
    assert sorted((f.noun, f.detail) for f in guard.findings) == [
        ("module global", f"{name}.Quiet.items grew: 1 -> 2 items"),
        ("mutable default", f"{name}.handler.__defaults__[0] grew: 1 -> 2 items"),
    ]
