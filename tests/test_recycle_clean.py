"""A clean recycle: what the recycled generation wrote is on disk, and the exit is bounded.

Under AWS's real awslambdaric and the layer's wrapper, a handler keeps one file open from init
and writes a line per invocation without flushing (the buffer holds them), registers an
``atexit`` callback at init, and leaks a file per invocation so that the environment turns
unhealthy under a small ``RLIMIT_NOFILE`` and is recycled. Every recycled generation's lines
and its ``atexit`` line must be on disk, and no invocation lost or answered twice.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

pytest.importorskip("awslambdaric")

WRAPPER = Path(__file__).resolve().parent.parent / "safehandler" / "exec_wrapper.sh"
FDS = 64  # unhealthy past 32 open fds: a recycle every twenty-odd invocations
EVENTS = 80

APP = """
import atexit, os

OUT = os.environ["OUT_DIR"]
PID = os.getpid()
journal = open(os.path.join(OUT, f"journal.{PID}"), "a")  # buffered, never flushed by us
KEPT = []


def at_exit():
    with open(os.path.join(OUT, f"atexit.{PID}"), "w") as done:
        done.write("flushed\\n")


atexit.register(at_exit)


def handler(event, context):
    journal.write(f"invocation {event['n']}\\n")
    KEPT.append(open(os.devnull))  # the leak that makes the recycle
    if event.get("hang_at_exit"):
        atexit.register(__import__("time").sleep, 3600)
    return {"n": event["n"], "pid": PID}
"""


def serve(tmp_path: Path, events: list[dict[str, object]]) -> tuple[LocalRuntimeAPI, str]:
    root = tmp_path / "task"
    out = tmp_path / "out"
    root.mkdir()
    out.mkdir()
    (root / "app.py").write_text(textwrap.dedent(APP))
    env = {"OUT_DIR": str(out), "TMPDIR": str(tmp_path)}
    with LocalRuntimeAPI(events) as api:
        runtime = run_runtime(
            "app.handler", task_root=root, api=api, wrapper=WRAPPER, env=env, rlimit_nofile=FDS
        )
        # (an exit that never ended would hold the next event for good)
        assert api.wait_for(len(events), timeout=120)
        runtime.stop()
    return api, runtime.stdout_text() + runtime.stderr_text()


def generations(api: LocalRuntimeAPI) -> dict[int, list[int]]:
    """pid -> the invocations it answered, in order."""
    served: dict[int, list[int]] = {}
    for result in api.results:
        assert result.ok, result.body
        served.setdefault(result.body["pid"], []).append(result.body["n"])
    return served


def test_a_recycled_generation_leaves_its_buffered_lines_and_atexit_output(
    tmp_path: Path,
) -> None:
    api, output = serve(tmp_path, [{"n": n} for n in range(1, EVENTS + 1)])
    assert [r.body["n"] for r in api.results] == list(range(1, EVENTS + 1))  # none lost or twice
    assert api.unanswered == []
    served = generations(api)
    assert len(served) >= 3  # at least two recycles
    *recycled, _last = served  # the last generation is still running
    out = tmp_path / "out"
    for pid in recycled:
        journal = (out / f"journal.{pid}").read_text().splitlines()
        assert journal == [f"invocation {n}" for n in served[pid]]
        assert (out / f"atexit.{pid}").read_text() == "flushed\n"
    # the recycle's own line, flushed before the exit, once per recycle
    assert output.count("safehandler: recycling the environment") == len(recycled)


def test_an_exit_that_hangs_is_cut_and_the_next_invocation_answered(tmp_path: Path) -> None:
    # an atexit callback that would sleep for an hour: the exit budget ends the process
    api, _ = serve(tmp_path, [{"n": n, "hang_at_exit": True} for n in range(1, 41)])
    assert [r.body["n"] for r in api.results] == list(range(1, 41))
    served = generations(api)
    assert len(served) >= 2
    first = next(iter(served))
    # the hanging callback, registered last, ran first and was cut: the one before it never ran
    assert not (tmp_path / "out" / f"atexit.{first}").exists()
