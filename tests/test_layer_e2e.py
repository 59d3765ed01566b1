"""End to end: AWS's real runtime client, the local Runtime API, Lambda's 1,024 fds.

The seed scenario with sockets to a local TCP server (so it runs without MySQL): a handler that
leaks one connection per invocation, kept in a module-level list, 1,500 invocations under
RLIMIT_NOFILE 1,024.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing.runtime_api import LocalRuntimeAPI, RuntimeProcess, run_runtime

pytest.importorskip("awslambdaric")

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "safehandler" / "exec_wrapper.sh"
INVOCATIONS = 1500
LAMBDA_FDS = 1024
WAIT = 240.0

LEAKY_APP = """
import os, socket

PEER = ("127.0.0.1", int(os.environ["PEER_PORT"]))
KEPT = []  # "reused later"; never


def handler(event, context):
    KEPT.append(socket.create_connection(PEER))
    return {"n": event["n"], "pid": os.getpid()}
"""

GUARDED_APP = """
import os, socket
import safehandler

PEER = ("127.0.0.1", int(os.environ["PEER_PORT"]))
KEPT = []


@safehandler.guard
def handler(event, context):
    KEPT.append(socket.create_connection(PEER))
    return {"n": event["n"], "pid": os.getpid()}
"""

ODD_APP = """
import os, sys
import safehandler


def fails(event, context):
    raise ValueError("bad order " + str(event["n"]))


def exits(event, context):
    sys.exit(3)


def where(event, context):
    return {"safehandler": safehandler.__file__, "handler": os.environ["_HANDLER"]}
"""


@pytest.fixture(scope="module")
def peer() -> Iterator[int]:
    """A TCP server that accepts and hangs up at once: only the client's fds pile up."""
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def task_root(tmp_path: Path, source: str) -> Path:
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    return tmp_path


def events(count: int = INVOCATIONS) -> list[dict[str, int]]:
    return [{"n": n} for n in range(1, count + 1)]


def soak_runtime(
    root: Path,
    peer: int,
    *,
    handler: str = "app.handler",
    wrapper: Path | None = None,
    restart_on_exit: bool = False,
    env: dict[str, str] | None = None,
    count: int = INVOCATIONS,
    opt: Path | None = None,
) -> tuple[LocalRuntimeAPI, list[RuntimeProcess]]:
    """Serve ``count`` events to awslambdaric under 1,024 fds; restart it when it exits, as
    Lambda replaces an environment whose runtime exited (only with ``restart_on_exit``)."""
    api = LocalRuntimeAPI(events(count), timeout=30).start()
    runtimes: list[RuntimeProcess] = []
    environment = {"PEER_PORT": str(peer), **(env or {})}
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            runtimes.append(
                run_runtime(
                    handler,
                    task_root=root,
                    api=api,
                    env=environment,
                    wrapper=wrapper,
                    rlimit_nofile=LAMBDA_FDS,
                    opt=opt,
                )
            )
            # (polled: a process exit is not an event the API's waits wake up for)
            while len(api.results) < count and runtimes[-1].poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            if len(api.results) >= count or not restart_on_exit or time.monotonic() > deadline:
                break
    finally:
        api.stop()
    return api, runtimes


def pids(api: LocalRuntimeAPI) -> list[int]:
    return [result.body["pid"] for result in api.results if result.ok]


def recycles(api: LocalRuntimeAPI) -> list[tuple[int, float]]:
    """(invocation after which the runtime changed, ms from its answer to the next fetch)."""
    out = []
    results = api.results
    for before, after in itertools.pairwise(results):
        if before.ok and after.ok and before.body["pid"] != after.body["pid"]:
            out.append((before.body["n"], (after.fetched_at - before.answered_at) * 1000))
    return out


def first_failure(api: LocalRuntimeAPI, runtimes: list[RuntimeProcess]) -> int:
    """The first invocation that did not succeed, however the unguarded runtime fails: every
    later invocation fails with EMFILE (awslambdaric on Python 3.10 to 3.12), or the runtime
    itself dies of it and the invocation in flight is lost (3.13, where formatting the error's
    traceback imports tokenize, which needs an fd)."""
    failed = [r.index for r in api.results if not r.ok]
    if failed:
        assert len(api.results) == INVOCATIONS
        first = min(failed) + 1
        assert len(failed) == INVOCATIONS - first + 1  # every invocation after the limit
        return first
    assert runtimes[-1].returncode not in (0, None)  # it died...
    assert len(api.unanswered) == 1  # ...with the invocation that hit the limit
    return len(api.results) + 1


def test_without_safehandler_invocations_fail_near_1000(tmp_path: Path, peer: int) -> None:
    api, runtimes = soak_runtime(task_root(tmp_path, LEAKY_APP), peer)
    first = first_failure(api, runtimes)
    # ~8 fds belong to the runtime itself
    assert 1000 < first < LAMBDA_FDS
    assert {r.error_type for r in api.results if not r.ok} <= {"OSError"}
    print(f"\nwithout safehandler: invocation {first} is the first that failed")


def test_with_the_layer_no_invocation_fails_and_the_runtime_is_recycled(
    tmp_path: Path, peer: int
) -> None:
    api, runtimes = soak_runtime(task_root(tmp_path, LEAKY_APP), peer, wrapper=WRAPPER)
    assert len(runtimes) == 1  # Lambda never saw the runtime exit
    assert len(api.results) == INVOCATIONS
    assert [r for r in api.results if not r.ok] == []
    assert api.unanswered == []
    assert [r.body["n"] for r in api.results] == list(range(1, INVOCATIONS + 1))
    done = recycles(api)
    # unhealthy past 512 of 1,024 fds: a fresh runtime about every 505 invocations
    assert [n for n, _ in done] == pytest.approx([505, 1010], abs=10)
    assert len(set(pids(api))) == len(done) + 1
    costs = sorted(ms for _, ms in done)
    print(f"\nwith the layer: 0 failed, {len(done)} recycles, {costs} ms each")


def test_with_the_decorator_alone_the_exit_costs_no_invocation(tmp_path: Path, peer: int) -> None:
    api, runtimes = soak_runtime(task_root(tmp_path, GUARDED_APP), peer, restart_on_exit=True)
    assert len(api.results) == INVOCATIONS
    assert [r for r in api.results if not r.ok] == []
    assert api.unanswered == []
    assert len(runtimes) == len(recycles(api)) + 1 >= 3  # each exit: a new environment
    assert all(r.returncode == 0 for r in runtimes[:-1])


def test_a_bad_original_handler_fails_init_as_without_the_layer(tmp_path: Path) -> None:
    root = task_root(tmp_path, ODD_APP)
    for handler, error_type in [
        ("missing_module.handler", "Runtime.ImportModuleError"),
        ("app.no_such_function", "Runtime.HandlerNotFound"),
    ]:
        native = _init_error(root, handler, wrapper=None)
        layered = _init_error(root, handler, wrapper=WRAPPER)
        assert native.error_type == layered.error_type == error_type
        assert layered.body["errorMessage"] == native.body["errorMessage"]


def _init_error(root: Path, handler: str, wrapper: Path | None) -> Any:
    with LocalRuntimeAPI(events(1)) as api:
        runtime = run_runtime(handler, task_root=root, api=api, wrapper=wrapper)
        assert api.wait_until(lambda: api.init_errors, timeout=30)
        assert runtime.wait(timeout=30) == 1
        return api.init_errors[0]


def test_the_handlers_own_errors_and_exits_pass_through_the_layer(tmp_path: Path) -> None:
    root = task_root(tmp_path, ODD_APP)
    with LocalRuntimeAPI(events(3)) as api:
        run_runtime("app.fails", task_root=root, api=api, wrapper=WRAPPER)
        assert api.wait_for(3, timeout=30)
        assert [r.error_type for r in api.results] == ["ValueError"] * 3
        assert api.results[0].body["errorMessage"] == "bad order 1"
    with LocalRuntimeAPI(events(1)) as api:
        runtime = run_runtime("app.exits", task_root=root, api=api, wrapper=WRAPPER)
        assert runtime.wait(timeout=30) == 3  # the wrapper passes the user's status through
        assert len(api.unanswered) == 1


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built layer zip, unpacked into an /opt-like directory."""
    out = tmp_path_factory.mktemp("layer")
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "layer", "build", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    archive = Path(proc.stdout.strip())
    opt = out / "opt"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(opt)
        for info in zipped.infolist():  # extractall drops modes: restore them
            os.chmod(opt / info.filename, (info.external_attr >> 16) & 0o777)
    return opt


def test_the_built_layer_has_the_wrapper_and_the_package(layer: Path) -> None:
    wrapper = layer / "safehandler"
    assert os.access(wrapper, os.X_OK)
    assert (layer / "python" / "safehandler" / "runtime.py").is_file()
    assert (layer / "python" / "psutil" / "__init__.py").is_file()


def test_the_seed_scenario_runs_from_the_unpacked_layer(
    layer: Path, tmp_path: Path, peer: int
) -> None:
    root = task_root(tmp_path, LEAKY_APP)
    (root / "where.py").write_text(textwrap.dedent(ODD_APP))
    with LocalRuntimeAPI(events(1)) as api:
        run_runtime(
            "where.where", task_root=root, api=api, wrapper=layer / "safehandler", opt=layer
        )
        assert api.wait_for(1, timeout=30)
        body = api.results[0].body
    assert body["safehandler"].startswith(str(layer / "python"))  # the layer's copy
    assert body["handler"] == "safehandler.runtime.handler"
    api, runtimes = soak_runtime(root, peer, wrapper=layer / "safehandler", count=1100, opt=layer)
    assert (len(api.results), [r for r in api.results if not r.ok]) == (1100, [])
    assert len(recycles(api)) == 2
    assert len(runtimes) == 1


SLOW_APP = """
import os, signal, time


def handler(event, context):
    time.sleep(30)
"""


def test_the_wrapper_forwards_sigterm_to_the_runtime(tmp_path: Path) -> None:
    root = task_root(tmp_path, SLOW_APP)
    with LocalRuntimeAPI(events(1)) as api:
        runtime = run_runtime("app.handler", task_root=root, api=api, wrapper=WRAPPER)
        assert api.wait_until(lambda: api.invocations, timeout=30)  # the handler is running
        [child] = api.invocations
        runtime_pid = child.pid
        runtime.send_signal(15)  # to the wrapper only, as Lambda's shutdown does
        status = runtime.wait(timeout=10)
    # the wrapper forwarded it, waited, and passed the runtime's "killed by SIGTERM" on
    assert status == 128 + 15
    assert runtime_pid is not None
    assert runtime_pid != runtime.pid
    with pytest.raises(ProcessLookupError):
        os.kill(runtime_pid, 0)


def test_managed_instances_are_never_recycled(monkeypatch: pytest.MonkeyPatch) -> None:
    from safehandler import recycle

    monkeypatch.delenv("AWS_LAMBDA_MAX_CONCURRENCY", raising=False)
    assert recycle.allowed()
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "8")
    assert not recycle.allowed()
