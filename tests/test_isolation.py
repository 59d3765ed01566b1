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
