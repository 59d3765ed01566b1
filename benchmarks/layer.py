"""The layer, measured in one run: cold start with and without shipped bytecode, restarts of
a function that holds most of its memory from init, and the field report's leak recycled.

Everything runs under ``awslambdaric`` against ``LocalRuntimeAPI``, through the layer's exec
wrapper, in the emulated managed runtime (``run_runtime(opt=...)``: ``python -S
/var/runtime/bootstrap.py`` with the built layer unpacked as ``/opt``, read-only, and
``PYTHONDONTWRITEBYTECODE=1``, so nothing is compiled to disk between runs, as on Lambda).

1. **Cold start.** ``safehandler layer build`` with and without bytecode; a trivial handler;
   the time from starting the wrapper to the runtime fetching its first event (the init
   phase Lambda bills). The two layers alternate, ``--runs`` (15) of each; medians. A third
   variant without the layer's wrapper is the floor.
2. **Held from init.** 100 MB held from init of a 128 MB function, not leaking, 50
   invocations: how many times the runtime was restarted.
3. **The field report's leak.** A file kept open per invocation, 1,500 invocations under
   ``RLIMIT_NOFILE`` 1,024: failed invocations, restarts and where, the recycle's latency (the
   old runtime's last answer to the new one fetching the next event) next to the same gap
   between two invocations of one runtime; medians.

    .venv/bin/python benchmarks/layer.py [--runs 15] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import os
import stat
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import _common

from safehandler import layer
from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

TRIVIAL = """
import os


def handler(event, context):
    return {"n": event["n"], "pid": os.getpid()}
"""

HOLDS = """
import os

HELD = bytes(range(256)) * (100 * 4096)


def handler(event, context):
    return {"n": event["n"], "pid": os.getpid()}
"""

LEAKS = """
import os

KEPT = []


def handler(event, context):
    KEPT.append(open(os.devnull))
    return {"n": event["n"], "pid": os.getpid()}
"""


def unpacked(archive: Path, opt: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(opt)
        for info in zipped.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(opt / info.filename, mode)
    for path in [opt, *opt.rglob("*")]:  # read-only, as Lambda's /opt
        if path.is_dir():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return opt


def writable(opt: Path) -> None:
    for path in [opt, *opt.rglob("*")]:
        if path.is_dir():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def serve(
    root: Path,
    opt: Path,
    count: int,
    *,
    wrapped: bool = True,
    memory_size: int = 1024,
    rlimit_nofile: int | None = None,
) -> tuple[LocalRuntimeAPI, float]:
    env = {"TMPDIR": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    with LocalRuntimeAPI([{"n": n} for n in range(1, count + 1)], memory_size=memory_size) as api:
        started = time.monotonic()
        runtime = run_runtime(
            "app.handler",
            task_root=root,
            api=api,
            opt=opt,
            wrapper=opt / "safehandler" if wrapped else None,
            env=env,
            rlimit_nofile=rlimit_nofile,
        )
        if not api.wait_for(count, timeout=600):
            raise RuntimeError(runtime.stderr_text()[-2000:])
        runtime.stop()
    return api, started


def task(scratch: Path, name: str, source: str) -> Path:
    root = scratch / name
    root.mkdir()
    (root / "app.py").write_text(textwrap.dedent(source))
    return root


def cold_starts(scratch: Path, runs: int) -> dict[str, Any]:
    compiled = unpacked(layer.build_layer(scratch / "zips-pyc"), scratch / "opt-pyc")
    plain = unpacked(layer.build_layer(scratch / "zips-src", interpreters=[]), scratch / "opt-src")
    root = task(scratch, "trivial", TRIVIAL)
    times: dict[str, list[float]] = {"bytecode": [], "sources": [], "no layer": []}
    for _ in range(runs):
        for name, opt, wrapped in (
            ("bytecode", compiled, True),
            ("sources", plain, True),
            ("no layer", plain, False),
        ):
            api, started = serve(root, opt, 1, wrapped=wrapped)
            times[name].append((api.results[0].fetched_at - started) * 1000)
    for opt in (compiled, plain):
        writable(opt)
    return {name: _common.median(values) for name, values in times.items()}


def held_from_init(scratch: Path, opt: Path) -> int:
    api, _ = serve(task(scratch, "holds", HOLDS), opt, 50, memory_size=128)
    return len({r.body["pid"] for r in api.results}) - 1


def field_leak(scratch: Path, opt: Path) -> dict[str, Any]:
    api, _ = serve(task(scratch, "leaks", LEAKS), opt, 1500, rlimit_nofile=1024)
    results = api.results
    restarts, same = [], []
    for before, after in itertools.pairwise(results):
        gap = (after.fetched_at - before.answered_at) * 1000
        if before.body["pid"] != after.body["pid"]:
            restarts.append((before.body["n"], gap))
        else:
            same.append(gap)
    return {
        "failed": sum(not r.ok for r in results),
        "answered": len(results),
        "restarts_after": [n for n, _ in restarts],
        "recycle_ms_median": _common.median(ms for _, ms in restarts),
        "same_runtime_gap_ms_median": _common.median(same),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    info = _common.machine("awslambdaric")
    print(_common.machine_line(info))
    print(f"bytecode for: {', '.join(layer.find_interpreters())}")
    with tempfile.TemporaryDirectory(prefix="safehandler-bench-layer-") as tmp:
        scratch = Path(tmp)
        cold = cold_starts(scratch, args.runs)
        opt = unpacked(layer.build_layer(scratch / "zips"), scratch / "opt")
        held = held_from_init(scratch, opt)
        leak = field_leak(scratch, opt)
        writable(opt)
    print(
        f"cold start to the first event fetched (median of {args.runs}): "
        f"{cold['bytecode']:.0f} ms with bytecode, {cold['sources']:.0f} ms sources only, "
        f"{cold['no layer']:.0f} ms without the layer"
    )
    print(f"100 of 128 MB held from init, 50 invocations: {held} restarts")
    print(
        f"field leak, 1,500 invocations under RLIMIT_NOFILE 1,024: {leak['failed']} failed, "
        f"{leak['answered']} answered, restarts after {leak['restarts_after']}, recycle "
        f"{leak['recycle_ms_median']:.0f} ms (median) vs "
        f"{leak['same_runtime_gap_ms_median']:.2f} ms between two invocations of one runtime"
    )
    _common.write_json(
        args.json, {"machine": info, "cold_start_ms": cold, "held_restarts": held, "leak": leak}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
