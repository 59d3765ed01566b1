"""The field reports of issue 6 through the decorator: globals, monkeypatches, threads and
child processes that outlive the invocation; each with its clean twin; and restore."""

from __future__ import annotations

import builtins
import json
import logging
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import safehandler

MODULE = "sh_isolation_app"


@pytest.fixture
def app() -> Iterator[types.ModuleType]:
    """A handler module of its own, as a Lambda task root's app.py would be."""
    module = types.ModuleType(MODULE)
    module.__file__ = os.path.join(os.path.dirname(__file__), "sh_isolation_app.py")
    sys.modules[MODULE] = module
    yield module
    del sys.modules[MODULE]


def define(module: types.ModuleType, source: str, **names: Any) -> Callable[..., Any]:
    """Run ``source`` in ``module`` (so the handler is that module's) and return ``handler``."""
    vars(module).update(names)
    exec(compile(source, module.__file__ or MODULE, "exec"), vars(module))
    handler: Callable[..., Any] = module.handler
    return handler


def test_json_dumps_replaced_is_a_finding_at_the_first_invocation(
    guarded, app, monkeypatch
) -> None:
    monkeypatch.setattr(json, "dumps", json.dumps)  # restored after the test
    handler = define(
        app, "def handler(event, context):\n    json.dumps = lambda o: 'x'\n", json=json
    )
    guard = guarded(handler)
    guard(1)
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.invocation) == ("global", "stdlib attribute", 1)
    assert finding.detail.startswith("json.dumps rebound: json.dumps -> ")


def test_by_default_a_stdlib_patch_is_reported_within_eight_invocations(
    guarded, app, monkeypatch
) -> None:
    monkeypatch.setattr(json, "dumps", json.dumps)
    handler = define(
        app,
        "def handler(event, context):\n    if event == 1:\n        json.dumps = lambda o: 'x'\n",
        json=json,
    )
    guard = guarded(handler, shared_state_every=None)  # auto: report mode checks in turn
    assert guard.engine.policy.shared_state_rotation == 8
    for invocation in range(1, 9):
        guard(1, event=invocation)
    [finding] = guard.findings
    assert (finding.noun, finding.count) == ("stdlib attribute", 1)
    assert 1 <= finding.invocation <= 8
    assert finding.detail.startswith("json.dumps rebound: json.dumps -> ")


def test_strict_soak_and_restore_check_the_shared_state_whole_every_time() -> None:
    def rotation(**settings: Any) -> int:
        return safehandler.Policy(**settings).shared_state_rotation

    assert rotation() == 8
    assert rotation(mode="strict") == 1
    assert rotation(warmup=1) == 1
    assert rotation(isolation="restore") == 1
    assert rotation(mode="strict", shared_state_every=4) == 4


def test_builtins_print_replaced(guarded, app, monkeypatch) -> None:
    monkeypatch.setattr(builtins, "print", builtins.print)
    handler = define(
        app, "import builtins\ndef handler(event, context):\n    builtins.print = len\n"
    )
    guard = guarded(handler)
    guard(1)
    [finding] = guard.findings
    assert (finding.noun, finding.detail) == (
        "builtin",
        "builtins.print rebound: builtins.print -> builtins.len",
    )


def test_environ_changed(guarded, app, monkeypatch) -> None:
    monkeypatch.delenv("SH_ISOLATION_FLAG", raising=False)
    handler = define(
        app, "import os\ndef handler(event, context):\n    os.environ['SH_ISOLATION_FLAG'] = 'on'\n"
    )
    guard = guarded(handler)
    guard(1)
    monkeypatch.delenv("SH_ISOLATION_FLAG")
    [finding] = guard.findings
    assert (finding.noun, finding.detail) == (
        "environment variable",
        "SH_ISOLATION_FLAG added: 'on'",
    )


def test_sys_path_appended_per_call(guarded, app, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    handler = define(
        app, "import sys\ndef handler(event, context):\n    sys.path.append('/opt/x')\n"
    )
    guard = guarded(handler)
    guard(2)
    # not the handler's to change: a finding at once, and again as it keeps changing
    assert [(f.noun, f.invocation) for f in guard.findings] == [
        ("sys.path entry", 1),
        ("sys.path entry", 2),
    ]


def test_file_handler_added_per_call(guarded, app, tmp_path: Path) -> None:
    logger = logging.getLogger("sh_isolation")
    handler = define(
        app,
        "import logging\n"
        "def handler(event, context):\n"
        "    logging.getLogger('sh_isolation').addHandler(logging.FileHandler(LOG))\n",
        LOG=str(tmp_path / "app.log"),
    )
    guard = guarded(handler)
    try:
        guard(1)
    finally:
        for log_handler in list(logger.handlers):
            logger.removeHandler(log_handler)
            log_handler.close()
    [added] = [f for f in guard.findings if f.noun == "logging handler"]
    assert added.detail.startswith("FileHandler to ")
    assert added.detail.endswith("app.log added to logger 'sh_isolation'")


def test_module_list_growing_per_call_and_its_clean_twins(guarded, app) -> None:
    handler = define(
        app,
        "SEEN = []\nLIMITS = (1, 2)\nCACHE = allow_global({})\n_client = None\n"
        "def handler(event, context):\n"
        "    global _client\n"
        "    SEEN.append(event)\n"  # grows every call: a leak
        "    CACHE['k'] = LIMITS[0]\n"  # an allowed, bounded cache
        "    if _client is None:\n"
        "        _client = object()\n",  # lazy initialisation: the recommended pattern
        allow_global=safehandler.allow_global,
    )
    guard = guarded(handler)
    guard(5)
    assert [(f.noun, f.invocation) for f in guard.findings] == [
        ("module global", 2),
        ("module global", 4),
    ]
    assert guard.findings[0].detail == f"{MODULE}.SEEN grew: 1 -> 2 items"


def test_allow_list_by_name(guarded, app) -> None:
    handler = define(app, "SEEN = []\ndef handler(event, context):\n    SEEN.append(1)\n")
    guard = guarded(handler, allow_globals=[f"{MODULE}.SEEN"])
    guard(5)
    assert guard.findings == []


def test_restore_isolates_a_replaced_json_dumps(guarded, app, monkeypatch) -> None:
    monkeypatch.setattr(json, "dumps", json.dumps)
    original = json.dumps
    handler = define(
        app,
        "import json\n"
        "def handler(event, context):\n"
        "    seen = json.dumps({'a': 1})\n"
        "    if event.get('poison'):\n"
        "        json.dumps = lambda obj: 'poisoned'\n"
        "    return seen\n",
    )
    guard = guarded(handler, isolation="restore")
    assert guard(1, event={"poison": True}) == ['{"a": 1}']
    assert json.dumps is original  # put back before the next invocation
    assert guard(1, event={"n": 2}) == ['{"a": 1}']
    assert guard.findings[0].detail.startswith("json.dumps rebound")


def test_without_restore_the_next_invocation_is_poisoned(guarded, app, monkeypatch) -> None:
    monkeypatch.setattr(json, "dumps", json.dumps)
    handler = define(
        app,
        "import json\n"
        "def handler(event, context):\n"
        "    seen = json.dumps({'a': 1})\n"
        "    if event.get('poison'):\n"
        "        json.dumps = lambda obj: 'poisoned'\n"
        "    return seen\n",
    )
    guard = guarded(handler)
    guard(1, event={"poison": True})
    assert guard(1, event={"n": 2}) == ["poisoned"]  # what restore prevents


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_cache_refresher_and_consumer_threads_are_findings(guarded, stop) -> None:
    def refresh() -> None:
        while not stop.wait(0.05):
            pass

    def consume() -> None:
        while not stop.is_set():
            time.sleep(0.01)

    def handler(event, context):
        threading.Thread(target=refresh, name="cache-refresher", daemon=True).start()
        threading.Thread(target=consume, name="kafka-consumer").start()

    guard = guarded(handler)
    guard(1)
    assert sorted(f.detail.split(" (")[0] for f in guard.findings) == [
        "named 'cache-refresher'",
        "named 'kafka-consumer'",
    ]


def test_threads_allowed_by_name_pattern(guarded, stop) -> None:
    def handler(event, context):
        threading.Thread(target=stop.wait, name="otel-exporter-1", daemon=True).start()

    guard = guarded(handler, allow_threads=["otel-exporter-*"])
    guard(2)
    assert guard.findings == []


def test_child_process_left_running_is_a_finding(guarded) -> None:
    children: list[subprocess.Popen[bytes]] = []

    def handler(event, context):
        children.append(subprocess.Popen(["sleep", "30"]))  # child-here

    guard = guarded(handler)
    try:
        guard(1)
    finally:
        for child in children:
            child.kill()
            child.wait()
    [finding] = guard.findings
    assert (finding.kind, finding.noun, finding.invocation) == ("process", "child process", 1)
    assert finding.detail == f"pid {children[0].pid} `sleep 30` still running"


def test_child_process_waited_for_is_clean(guarded) -> None:
    def handler(event, context):
        subprocess.run(["true"], check=True)

    guard = guarded(handler)
    guard(3)
    assert guard.findings == []


def test_the_runtimes_own_trace_id_is_not_the_handlers_doing(guarded, app, monkeypatch) -> None:
    # awslambdaric sets _X_AMZN_TRACE_ID before every invocation
    handler = define(app, "def handler(event, context):\n    return 1\n")
    guard = guarded(handler)
    for n in range(5):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root=1-{n:08x}")
        guard(1)
    assert guard.findings == []
    probe = guard.engine.probes["globals"]
    assert probe.snapshot() is probe.snapshot()  # the cheap path: nothing moved


# -- only changes made during an invocation count ----------------------------------------------


def test_a_global_the_caller_changes_between_invocations_is_not_the_handlers(guarded, app) -> None:
    handler = define(
        app, "ROUND = 0\nSEEN = []\ndef handler(event, context):\n    return ROUND, len(SEEN)\n"
    )
    guard = guarded(handler, mode="strict")
    for round_number in range(1, 6):  # a script's loop variable, in the handler's module
        app.ROUND = round_number
        app.SEEN.append(round_number)
        assert guard(1) == [(round_number, round_number)]
    assert guard.findings == []


def test_the_same_change_made_during_the_invocation_is_reported(guarded, app) -> None:
    handler = define(
        app,
        "ROUND = 0\n"
        "def handler(event, context):\n"
        "    global ROUND\n"
        "    ROUND = event['round']\n"
        "    return ROUND\n",
    )
    guard = guarded(handler)
    for round_number in range(1, 4):
        guard(1, event={"round": round_number})
    [finding] = guard.findings  # the first rebinding is a lazy initialisation's shape
    assert (finding.noun, finding.invocation) == ("module global", 2)
    assert (finding.detail, finding.count) == (f"{MODULE}.ROUND rebound: 1 -> 2", 2)


# -- what restore puts back, and what it leaves ---------------------------------------------------


def test_restore_never_reinstates_a_closed_connection(guarded, app) -> None:
    import sqlite3

    handler = define(
        app,
        "import sqlite3\n"
        "CONN = sqlite3.connect(':memory:')\n"
        "def handler(event, context):\n"
        "    global CONN\n"
        "    answer = CONN.execute('select 1').fetchone()[0]\n"
        "    CONN.close()  # a reconnect: the old connection is closed and replaced\n"
        "    CONN = sqlite3.connect(':memory:')\n"
        "    return answer\n",
    )
    guard = guarded(handler, isolation="restore", probes=["globals"])
    try:
        assert guard(6) == [1] * 6  # put back, the closed one would fail the next call
        finding = guard.findings[0]  # still reported: rebound in every invocation
        assert (finding.noun, finding.invocation) == ("module global", 2)
        assert finding.detail.startswith(f"{MODULE}.CONN rebound: <sqlite3.Connection object>")
        assert {f.group for f in guard.findings} == {finding.group}
    finally:
        app.CONN.close()
    assert isinstance(app.CONN, sqlite3.Connection)


def test_restore_keeps_a_lazy_initialisation_and_a_replaced_store(guarded, app) -> None:
    handler = define(
        app,
        "CLIENT = None\n"
        "SESSIONS = {}\n"
        "def handler(event, context):\n"
        "    global CLIENT, SESSIONS\n"
        "    CLIENT = CLIENT or object()\n"
        "    SESSIONS = {**SESSIONS, event['sid']: event['user']}\n"
        "    return id(CLIENT), len(SESSIONS)\n",
    )
    guard = guarded(handler, isolation="restore")
    answers = [guard(1, event={"sid": n, "user": f"u{n}"})[0] for n in range(5)]
    assert [count for _, count in answers] == [1, 2, 3, 4, 5]  # no session lost
    assert len({client for client, _ in answers}) == 1  # made once, kept
    sessions = {n: f"u{n}" for n in range(5)}
    assert sessions == app.SESSIONS
    assert {f.detail.split(":")[0] for f in guard.findings} == {f"{MODULE}.SESSIONS rebound"}


def test_restore_removes_what_each_invocation_added_and_keeps_updates(guarded, app) -> None:
    handler = define(
        app,
        "COUNTS = {'calls': 0}\n"
        "SEEN = []\n"
        "def handler(event, context):\n"
        "    COUNTS['calls'] += 1  # an update of an item: kept\n"
        "    COUNTS[event['n']] = True  # a new key per call: removed once judged a leak\n"
        "    SEEN.append(event['n'])\n"
        "    return COUNTS['calls'], len(SEEN), len(COUNTS)\n",
    )
    guard = guarded(handler, isolation="restore")
    answers = [guard(1, event={"n": n})[0] for n in range(6)]
    # invocation 1 is one change (a lazy fill's shape); from the second each is undone
    assert answers == [(1, 1, 2), (2, 2, 3), (3, 2, 3), (4, 2, 3), (5, 2, 3), (6, 2, 3)]
    assert (app.COUNTS, app.SEEN) == ({"calls": 6, 0: True}, [0])
    assert {f.detail for f in guard.findings} == {
        f"{MODULE}.COUNTS grew: 2 -> 3 items",  # each time the same: put back every time
        f"{MODULE}.SEEN grew: 1 -> 2 items",
    }


def test_the_plain_guard_keeps_what_restore_would_remove(guarded, app) -> None:
    handler = define(app, "SEEN = []\ndef handler(event, context):\n    SEEN.append(1)\n")
    guarded(handler)(6)
    assert app.SEEN == [1] * 6


@pytest.fixture
def cwd_kept(tmp_path: Path) -> Iterator[Path]:
    here = os.getcwd()
    try:
        yield tmp_path
    finally:
        os.chdir(here)


def test_restore_leaves_a_one_time_chdir_and_undoes_a_repeated_one(guarded, app, cwd_kept) -> None:
    data = cwd_kept / "data"
    data.mkdir()
    once = define(
        app,
        "import os\n"
        "def handler(event, context):\n"
        "    if event.get('first'):\n"
        "        os.chdir(event['first'])\n"
        "    return os.getcwd()\n",
    )
    guard = guarded(once, isolation="restore")
    assert guard(1, event={"first": str(data)}) == [str(data)]
    assert guard(3) == [str(data)] * 3  # set once on purpose: left alone
    [finding] = guard.findings  # still reported: it is shared state
    assert finding.noun == "working directory"

    start = os.getcwd()
    every = define(
        app,
        "import os, tempfile\ndef handler(event, context):\n    os.chdir(event['dir'])\n",
    )
    guard = guarded(every, isolation="restore")
    dirs = [cwd_kept / f"d{n}" for n in range(3)]
    for directory in dirs:
        directory.mkdir()
        guard(1, event={"dir": str(directory)})
    # the first change may be deliberate; the second shows it is per call: undone from then on
    assert os.getcwd() == str(dirs[0]) != start


def test_restore_is_skipped_when_invocations_overlap(guarded, app, monkeypatch) -> None:
    monkeypatch.setattr(json, "dumps", json.dumps)
    original = json.dumps
    entered, release = threading.Event(), threading.Event()
    handler = define(
        app,
        "import json\n"
        "def handler(event, context):\n"
        "    if event.get('wait'):\n"
        "        entered.set()\n"
        "        release.wait(10)\n"
        "    else:\n"
        "        json.dumps = lambda obj: 'patched'\n",
        entered=entered,
        release=release,
    )
    guard = guarded(handler, isolation="restore")
    waiter = threading.Thread(target=guard, kwargs={"event": {"wait": True}})
    waiter.start()
    try:
        assert entered.wait(10)
        guard(1, event={"patch": True})  # ends while the other invocation runs
        assert json.dumps is not original  # shared state another invocation may rely on
    finally:
        release.set()
        waiter.join(10)
    # (seen by both invocations: shared state has no owner to tell them apart)
    assert {f.detail.split(":")[0] for f in guard.findings} == {"json.dumps rebound"}
    json.dumps = original
    guarded(handler, isolation="restore")(1, event={"patch": True})  # alone: put back
    assert json.dumps is original


# -- a new name per invocation: one growing finding ------------------------------------------------


def test_a_new_name_per_invocation_is_one_growing_finding(guarded, app, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved_environ = dict(os.environ)
    handler = define(
        app,
        "import os, sys\n"
        "def handler(event, context):\n"
        "    n = event['n']\n"
        "    os.environ[f'SH_ISO_REQ_{n}'] = '1'\n"
        "    sys.path.append(f'/opt/sh-iso/{n}')\n"
        "    globals()[f'RESULT_{n}'] = n\n",
    )
    guard = guarded(handler)
    try:
        for n in range(1, 65):
            guard(1, event={"n": n})
    finally:
        for name in set(os.environ) - set(saved_environ):
            del os.environ[name]
    by_noun: dict[str, list[Any]] = {}
    for finding in guard.findings:
        by_noun.setdefault(finding.noun, []).append(finding)
    assert sorted(by_noun) == ["environment variable", "module global", "sys.path entry"]
    for findings in by_noun.values():
        assert len({finding.group for finding in findings}) == 1  # one group, not 64
        counts = [finding.count for finding in findings]
        assert len(counts) <= 8, counts  # a line per doubling, not one per invocation
        assert counts[-1] >= 32, counts
    assert by_noun["module global"][-1].detail.startswith(f"{MODULE}.RESULT_")
    groups = [key for key in guard.engine.judge.tracker.sites if key[0] == "global"]
    assert len(groups) == 3  # the engine's state does not grow with the names


def test_one_new_name_once_is_not_a_module_global_finding(guarded, app) -> None:
    handler = define(
        app,
        "def handler(event, context):\n"
        "    global CLIENT\n"
        "    if 'CLIENT' not in globals():\n"
        "        CLIENT = object()\n",
    )
    guard = guarded(handler)
    guard(5)
    assert guard.findings == []
