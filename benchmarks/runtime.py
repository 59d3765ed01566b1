"""Through AWS's runtime client: invocations per second with and without the layer, and
the cost of one soft recycle.

Everything runs under ``awslambdaric`` (``python -m awslambdaric app.handler``), AWS's real
runtime interface client, against ``safehandler.runtime_api.LocalRuntimeAPI``, a local
Lambda Runtime API on 127.0.0.1, with ``safehandler.runtime_api.run_runtime``.

1. **Throughput.** A trivial handler (it returns the event's number and its pid) serves
   ``--events`` events (2,000), without the layer (``_HANDLER=app.handler``, plain
   ``awslambdaric``) and with it (``AWS_LAMBDA_EXEC_WRAPPER=safehandler/exec_wrapper.sh``:
   the handler redirected to ``safehandler.runtime.handler``, which guards ``app.handler``
   with the default policy, and the runtime run as the wrapper's child). The variants
   alternate, ``--repeats`` (3) times each. Invocations per second are counted from the
   first event fetched to the last answer (the runtime's start-up is reported apart, as the
   time from starting the process to the first event fetched); medians, and the ratio.
   Two diagnostic variants of the layer split the cost: ``SAFEHANDLER_MODE=off`` (the
   wrapper and the redirection, no guard) and ``SAFEHANDLER_PROBES`` without ``globals``. The
   guard's findings logged in each run (the runtime's output) are counted: the handler leaks
   nothing, so any is a false positive. The local API is a Python HTTP server on the same
   2 cores: it is part of every figure.
2. **Soft recycle.** With the layer, under ``RLIMIT_NOFILE`` 256, a handler that leaks one
   socket per invocation (to a local TCP server that accepts and hangs up): past 50 % of the
   limit (128 fds) the guard marks the environment unhealthy, the runtime exits between
   invocations (a clean exit, after creating the wrapper's marker file) and the wrapper
   starts a fresh one, about every 120 invocations.
   ``--recycle-events`` (1,500) events. A recycle's cost is the time from the answer of the
   old runtime's last invocation (``answered_at``) to the next event being fetched by the
   new pid (``fetched_at``), which is what a caller waiting for that event would see; next to
   the same gap between two invocations of one runtime.

    .venv/bin/python benchmarks/runtime.py
    (options: --events 2000 --repeats 3 --recycle-events 1500 --json OUT); about 30 s
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

WRAPPER = Path(_common.ROOT) / "safehandler" / "exec_wrapper.sh"
RECYCLE_FDS = 256
WAIT = 300.0

APP = '''\
"""Handlers for benchmarks/runtime.py."""
import os
import socket

KEPT = []  # "reused later"; never


def handler(event, context):
    return {"n": event["n"], "pid": os.getpid()}


def leaky(event, context):
    KEPT.append(socket.create_connection(("127.0.0.1", int(os.environ["PEER_PORT"]))))
    return {"n": event["n"], "pid": os.getpid()}
'''


def serve(
    root: Path,
    handler: str,
    count: int,
    *,
    wrapper: Path | None,
    env: dict[str, str],
    rlimit_nofile: int | None = None,
) -> dict[str, Any]:
    """Serve ``count`` events to one runtime (restarted by the wrapper, if any)."""
    api = LocalRuntimeAPI(({"n": n} for n in range(1, count + 1)), timeout=30).start()
    try:
        started = time.monotonic()
        runtime = run_runtime(
            handler,
            task_root=root,
            api=api,
            env=env,
            wrapper=wrapper,
            rlimit_nofile=rlimit_nofile,
        )
        deadline = time.monotonic() + WAIT
        done = False
        while not done and time.monotonic() < deadline:
            done = api.wait_for(count, timeout=0.5)
            if not done and runtime.poll() is not None:  # the runtime (or wrapper) exited
                done = api.wait_for(count, timeout=0.5)
                break
        results = api.results
        exited = runtime.poll()
    finally:
        api.stop()
    if not done:
        raise RuntimeError(
            f"{handler}: {len(results)} of {count} answered "
            f"(runtime exit {exited}):\n{runtime.stderr_text()[-2000:]}"
        )
    failed = [r for r in results if not r.ok]
    first, last = results[0], results[-1]
    findings = guard_findings(runtime.stdout_text() + runtime.stderr_text())
    return {
        "findings_logged": len(findings),
        "finding_subjects": sorted(set(findings)),
        "answered": len(results),
        "failed": len(failed),
        "startup_s": first.fetched_at - started,
        "serving_s": last.answered_at - first.fetched_at,
        "per_second": (len(results) - 1) / (last.answered_at - first.fetched_at),
        "pids": len({r.body["pid"] for r in results if r.ok}),
        "results": results,
    }


def guard_findings(output: str) -> list[str]:
    """What the guard logged as leaks: "noun: first word of what changed", per line."""
    subjects = []
    for line in output.splitlines():
        if '"safehandler.leak"' not in line:
            continue
        try:
            payload = json.loads(line[line.index("{") :])["safehandler"]
        except (ValueError, KeyError):
            subjects.append("?")
            continue
        what = str(payload.get("what", "")).split(" ")[0]
        noun = payload.get("noun")
        subjects.append(f"{noun} {what}" if payload.get("kind") == "global" else str(noun))
    return subjects


def gaps(results: list[Any]) -> tuple[list[float], list[tuple[int, float]]]:
    """ms from an answer to the next fetch: within one runtime, and across a recycle."""
    same, recycled = [], []
    for before, after in itertools.pairwise(results):
        if not (before.ok and after.ok):
            continue
        ms = (after.fetched_at - before.answered_at) * 1000
        if before.body["pid"] == after.body["pid"]:
            same.append(ms)
        else:
            recycled.append((before.body["n"], ms))
    return same, recycled


def variants() -> list[tuple[str, str, Path | None, dict[str, str]]]:
    """(key, label, exec wrapper, extra environment) of the throughput runs."""
    from safehandler.policy import PROBE_NAMES

    no_globals = ",".join(p for p in PROBE_NAMES if p != "globals")
    return [
        ("plain", "awslambdaric, no layer", None, {}),
        ("layer", "awslambdaric + exec wrapper (redirection + default guard)", WRAPPER, {}),
        (
            "layer_off",
            "(diagnostic) exec wrapper, `SAFEHANDLER_MODE=off`: redirection only",
            WRAPPER,
            {"SAFEHANDLER_MODE": "off"},
        ),
        (
            "layer_noglobals",
            f"(diagnostic) exec wrapper, `SAFEHANDLER_PROBES={no_globals}`: no globals probe",
            WRAPPER,
            {"SAFEHANDLER_PROBES": no_globals},
        ),
    ]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    kinds = variants()
    out: dict[str, Any] = {"throughput": {key: [] for key, *_ in kinds}, "recycle": None}
    with tempfile.TemporaryDirectory(prefix="safehandler-bench-runtime-") as tmp:
        root = Path(tmp)
        (root / "app.py").write_text(APP, encoding="utf-8")
        env = _common.clean_env({"SAFEHANDLER_HEALTH_FILE": str(root / "health.json")})
        serve(root, "app.handler", 50, wrapper=WRAPPER, env=env)  # untimed: bytecode
        for _ in range(args.repeats):
            for key, _, wrapper, extra in kinds:
                run = serve(root, "app.handler", args.events, wrapper=wrapper, env={**env, **extra})
                same, _ = gaps(run.pop("results"))
                run["gap_ms_median"] = _common.median(same)
                out["throughput"][key].append(run)
        with _common.peer_server() as (_, port):
            run = serve(
                root,
                "app.leaky",
                args.recycle_events,
                wrapper=WRAPPER,
                env={**env, "PEER_PORT": str(port)},
                rlimit_nofile=RECYCLE_FDS,
            )
        same, recycled = gaps(run.pop("results"))
        run["same_runtime_gap_ms"] = same
        run["recycles"] = recycled
        out["recycle"] = run
    return out


def summary(data: dict[str, Any]) -> dict[str, Any]:
    throughput = {}
    for key, runs in data["throughput"].items():
        throughput[key] = {
            "per_second": _common.median(r["per_second"] for r in runs),
            "runs_per_second": [r["per_second"] for r in runs],
            "startup_ms": _common.median(r["startup_s"] for r in runs) * 1000,
            "gap_ms": _common.median(r["gap_ms_median"] for r in runs),
            "findings_logged": _common.median(r["findings_logged"] for r in runs),
            "finding_subjects": sorted({x for r in runs for x in r["finding_subjects"]}),
            "failed": sum(r["failed"] for r in runs),
        }
    plain = throughput["plain"]["per_second"]
    for row in throughput.values():
        row["ratio"] = row["per_second"] / plain
        row["us_per_invocation"] = 1e6 / row["per_second"]
        row["added_us"] = row["us_per_invocation"] - 1e6 / plain
    rec = data["recycle"]
    costs = [ms for _, ms in rec["recycles"]]
    return {
        "throughput": throughput,
        "recycles": len(costs),
        "recycled_after": [n for n, _ in rec["recycles"]],
        "recycle_ms_median": _common.median(costs) if costs else None,
        "recycle_ms_max": max(costs) if costs else None,
        "recycle_ms_min": min(costs) if costs else None,
        "same_runtime_gap_ms_median": _common.median(rec["same_runtime_gap_ms"]),
        "recycle_failed": rec["failed"],
        "recycle_answered": rec["answered"],
        "recycle_pids": rec["pids"],
        "recycle_findings": rec["findings_logged"],
        "recycle_finding_subjects": rec["finding_subjects"],
    }


def markdown(data: dict[str, Any], args: argparse.Namespace) -> str:
    s = summary(data)
    lines = [
        f"Throughput: a trivial handler, {args.events:,} events per run, median of "
        f"{args.repeats} alternating runs; invocations per second from the first event fetched "
        "to the last answer.",
        "",
        "| runtime | invocations per second | ratio | µs per invocation (added) | start-up to "
        "first fetch, ms | answer-to-next-fetch gap, ms | findings logged per run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label, *_ in variants():
        row = s["throughput"][key]
        added = "" if key == "plain" else f" ({row['added_us']:+,.0f})"
        lines.append(
            f"| {label} | {row['per_second']:,.0f} | {row['ratio']:.2f}x "
            f"| {row['us_per_invocation']:,.0f}{added} | {row['startup_ms']:,.0f} "
            f"| {row['gap_ms']:.3f} | {row['findings_logged']:.0f} |"
        )
    subjects = sorted({x for row in s["throughput"].values() for x in row["finding_subjects"]})
    runs = "; ".join(
        f"{key} " + ", ".join(f"{v:,.0f}" for v in row["runs_per_second"])
        for key, row in s["throughput"].items()
    )
    lines += [
        "",
        "What the guard logged in these runs (the handler leaks nothing): "
        + (", ".join(subjects) or "nothing")
        + f". Runs (invocations per second): {runs}.",
        "",
        f"Soft recycle: the layer, RLIMIT_NOFILE {RECYCLE_FDS}, one socket leaked per "
        f"invocation, {s['recycle_answered']:,} events answered, {s['recycle_failed']} failed, "
        f"{s['recycle_pids']} runtime processes; findings logged: {s['recycle_findings']} "
        f"({', '.join(s['recycle_finding_subjects']) or 'none'}).",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| recycles | {s['recycles']} (after invocations "
        f"{', '.join(str(n) for n in s['recycled_after'])}) |",
    ]
    if s["recycles"]:
        lines += [
            "| recycle: last answer of the old runtime to the first fetch by the new one, "
            f"median | {s['recycle_ms_median']:.1f} ms |",
            f"| recycle, max (min) | {s['recycle_ms_max']:.1f} ms ({s['recycle_ms_min']:.1f} ms) |",
            "| the same gap between two invocations of one runtime, median "
            f"| {s['same_runtime_gap_ms_median']:.2f} ms |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (3)")
    parser.add_argument("--recycle-events", type=int, default=1500, help="events, recycle run")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = measure(args)
    info = _common.machine("awslambdaric")
    print(_common.machine_line(info))
    print()
    print(markdown(data, args))
    print(f"\n(run took {time.perf_counter() - started:.1f} s)")
    _common.write_json(
        args.json,
        {"machine": info, "settings": vars(args), "summary": summary(data), "runs": data},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
