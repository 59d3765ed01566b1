"""The guard's cost per invocation as a ratio to the floor, on the paths users deploy.

The floor is the least any such guard does per invocation, written by hand: two ``fstat`` of a
held ``/proc/self/fd``, one ``pread`` of a held ``/proc/self/statm``, a thread count. Every
figure is a median over interleaved rounds (each round times one batch of every variant, in a
shuffled order, the cyclic GC off), divided by the floor's median of the same rounds.

Variants, each at 10 and at 900 open fds (890 extra ``/dev/null`` descriptors held by the
script), and each guarded variant on the modern-kernel path (``fstat().st_size`` is the count,
Linux 6.2+) and on the path of Lambda's older kernel (no count; emulated with
``safehandler.probes.fds.emulate_kernel_without_count``, which makes the probe count as it
would there):

- **trivial**: ``return {"statusCode": 200}``;
- **realistic**: a handler module in a task root that also holds a vendored package (a
  ``pip install -t .`` copy of SQLAlchemy, with its ``.dist-info``, imported at module level);
  per invocation it logs five lines through a stdlib logger (to a ``StreamHandler`` on
  ``/dev/null``), opens, writes and closes a file, and does some JSON work;
- **realistic, Powertools**: the same logging through Powertools' ``Logger``.

Also: the cost per audited event of the hooks safehandler installs, outside invocations
(``sys.audit`` in a loop, in a fresh process with and without ``import safehandler`` and a
guard built), and the guard's memory (RSS and gc-tracked objects) after 1,000 and 100,000
clean invocations.

    .venv/bin/python benchmarks/floor.py [--rounds 15] [--calls 1000] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import _common

import safehandler
from safehandler.probes import fds as fd_probe
from safehandler.testing import FakeLambdaContext

Handler = Callable[[Any, Any], Any]


def floor(handler: Handler) -> Handler:
    """The minimal probe around a handler: what any guard must read per invocation."""
    dir_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    statm = os.open("/proc/self/statm", os.O_RDONLY)
    fstat, pread, active = os.fstat, os.pread, threading.active_count

    def probed(event: Any, context: Any) -> Any:
        fds_before = fstat(dir_fd).st_size
        threads_before = active()
        result = handler(event, context)
        if fstat(dir_fd).st_size != fds_before or active() != threads_before:
            pass  # a guard would look closer here
        pread(statm, 64, 0)
        return result

    return probed


def trivial(event: Any, context: Any) -> dict[str, int]:
    return {"statusCode": 200}


HANDLER_SOURCE = """
import json, logging, os, sqlalchemy

logger = logging.getLogger("bench.app")
logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))
logger.setLevel(logging.INFO)
logger.propagate = False
SCRATCH = os.path.join(os.path.dirname(__file__), "scratch.json")

def handler(event, context):
    for step in range(5):
        logger.info("step %d of %s", step, event.get("path"))
    body = json.dumps({"event": event, "items": list(range(50))})
    with open(SCRATCH, "w") as out:
        out.write(body)
    return {"statusCode": 200, "body": json.loads(body)["event"]["path"]}
"""

POWERTOOLS_SOURCE = """
import json, os, sqlalchemy
from aws_lambda_powertools import Logger

logger = Logger(service="bench", logger_handler=__import__("logging").StreamHandler(
    open(os.devnull, "w")))
SCRATCH = os.path.join(os.path.dirname(__file__), "scratch_pt.json")

def handler(event, context):
    for step in range(5):
        logger.info("step %d of %s", step, event.get("path"))
    body = json.dumps({"event": event, "items": list(range(50))})
    with open(SCRATCH, "w") as out:
        out.write(body)
    return {"statusCode": 200, "body": json.loads(body)["event"]["path"]}
"""


def task_root() -> str:
    """A Lambda-style task root: the handler modules beside a vendored SQLAlchemy."""
    import sqlalchemy

    root = tempfile.mkdtemp(prefix="safehandler-bench-")
    package = os.path.dirname(sqlalchemy.__file__)
    shutil.copytree(package, os.path.join(root, "sqlalchemy"))
    site = os.path.dirname(package)
    for name in os.listdir(site):
        if name.lower().startswith("sqlalchemy-") and name.endswith(".dist-info"):
            shutil.copytree(os.path.join(site, name), os.path.join(root, name))
    with open(os.path.join(root, "app.py"), "w", encoding="utf-8") as out:
        out.write(HANDLER_SOURCE)
    with open(os.path.join(root, "app_pt.py"), "w", encoding="utf-8") as out:
        out.write(POWERTOOLS_SOURCE)
    return root


def guards(handler: Handler) -> dict[str, Handler]:
    """The handler guarded on each kernel path (the probe picks its path when built)."""
    modern = safehandler.guard(handler)
    fd_probe.emulate_kernel_without_count()
    try:
        old = safehandler.guard(handler)
    finally:
        fd_probe.emulate_kernel_without_count(False)
    return {"guard, kernel 6.2+": modern, "guard, kernel < 6.2": old}


def variants(realistic: Handler, powertools: Handler) -> dict[str, Handler]:
    out: dict[str, Handler] = {"floor (trivial)": floor(trivial), "bare trivial": trivial}
    out.update({f"trivial: {k}": v for k, v in guards(trivial).items()})
    out["bare realistic"] = realistic
    out.update({f"realistic: {k}": v for k, v in guards(realistic).items()})
    out["bare realistic, Powertools"] = powertools
    out.update({f"realistic, Powertools: {k}": v for k, v in guards(powertools).items()})
    return out


def time_batch(handler: Handler, calls: int, event: Any, context: Any) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(calls):
            handler(event, context)
        return (time.perf_counter_ns() - start) / calls
    finally:
        gc.enable()


def measure(named: dict[str, Handler], rounds: int, calls: int) -> dict[str, float]:
    event: dict[str, Any] = {"path": "/bench", "httpMethod": "GET"}
    context = FakeLambdaContext(timeout_s=3600)
    for handler in named.values():
        time_batch(handler, 200, event, context)
    samples: dict[str, list[float]] = {name: [] for name in named}
    order = list(named)
    rng = random.Random(1)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(time_batch(named[name], calls, event, context))
    return {name: statistics.median(values) for name, values in samples.items()}


HOOK_LOOP = """
import sys, time
{setup}
n = 200_000
start = time.perf_counter_ns()
for _ in range(n):
    sys.audit("bench.event", 1)
print((time.perf_counter_ns() - start) / n)
"""


def hook_cost() -> dict[str, float]:
    """ns per audited event outside any invocation: none, and with safehandler's hooks."""
    setups = {
        "no hooks": "",
        "safehandler imported, a guard built": (
            "import safehandler\nsafehandler.guard(lambda e, c: None)({}, None)"
        ),
    }
    out: dict[str, float] = {}
    for name, setup in setups.items():
        runs = []
        for _ in range(5):
            done = subprocess.run(
                [sys.executable, "-c", HOOK_LOOP.format(setup=setup)],
                capture_output=True,
                text=True,
                check=True,
                env=_common.clean_env(),
            )
            runs.append(float(done.stdout.split()[-1]))
        out[name] = statistics.median(runs)
    return out


def own_memory() -> dict[str, float]:
    """The guard's RSS and gc-tracked objects after 1,000 and 100,000 clean invocations."""
    handler = safehandler.guard(trivial)
    context = FakeLambdaContext(timeout_s=3600)
    statm = os.open("/proc/self/statm", os.O_RDONLY)
    page = os.sysconf("SC_PAGE_SIZE")
    out: dict[str, float] = {}
    done = 0
    for mark in (1_000, 100_000):
        for _ in range(mark - done):
            handler({}, context)
        done = mark
        gc.collect()
        out[f"RSS MiB after {mark:,}"] = int(os.pread(statm, 64, 0).split()[1]) * page / 2**20
        out[f"gc objects after {mark:,}"] = len(gc.get_objects())
    os.close(statm)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root = task_root()
    held: list[int] = []
    try:
        sys.path.insert(0, root)
        realistic = importlib.import_module("app").handler
        powertools = importlib.import_module("app_pt").handler
        results: dict[str, dict[str, float]] = {}
        for fds in (10, 900):
            while fd_probe.count_fds() < fds:
                held.append(os.open(os.devnull, os.O_RDONLY))
            named = variants(realistic, powertools)  # built at this fd count: its baseline
            results[f"{fd_probe.count_fds()} open fds"] = measure(named, args.rounds, args.calls)
        for fd in held:
            os.close(fd)
        held.clear()
        hooks = hook_cost()
        memory = own_memory()
    finally:
        for fd in held:
            os.close(fd)
        shutil.rmtree(root, ignore_errors=True)
    info = _common.machine("aws-lambda-powertools", "sqlalchemy")
    print(_common.machine_line(info), "\n")
    for phase, medians in results.items():
        base = medians["floor (trivial)"]
        print(f"### {phase} (floor {base / 1000:.2f} µs)\n")
        print("| variant | µs per call | ratio to the floor | added to bare, µs |")
        print("| --- | ---: | ---: | ---: |")
        for name, value in medians.items():
            bare = (
                medians["bare trivial"]
                if name.startswith("trivial")
                else medians["bare realistic, Powertools"]
                if name.startswith("realistic, Powertools")
                else medians["bare realistic"]
                if name.startswith("realistic")
                else None
            )
            added = f"{(value - bare) / 1000:+.2f}" if bare is not None else "-"
            print(f"| {name} | {value / 1000:.2f} | {value / base:.2f}x | {added} |")
        print()
    print("### hooks outside invocations, ns per audited event\n")
    for name, value in hooks.items():
        print(f"- {name}: {value:.0f}")
    added = hooks["safehandler imported, a guard built"] - hooks["no hooks"]
    print(f"- added by safehandler: {added:.0f}\n")
    print("### the guard's own memory\n")
    for name, value in memory.items():
        print(f"- {name}: {value:,.1f}")
    print(f"\n(run took {time.perf_counter() - started:.1f} s)")
    _common.write_json(
        args.json, {"machine": info, "results": results, "hooks": hooks, "memory": memory}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
