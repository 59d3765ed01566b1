"""Per-invocation overhead of ``@safehandler.guard``, next to a bare handler and Powertools.

All variants run in one process and are interleaved: every round times one batch of each, in
a shuffled order, so drift (frequency scaling, other load) hits them alike. A batch is
``--calls`` calls timed as a whole with ``time.perf_counter_ns`` while the cyclic GC is off;
the figure per variant is the median over rounds of batch time / calls.

Variants on a trivial handler (returns a constant):

- bare: the function itself;
- guard (report): ``safehandler.guard(policy=safehandler.Policy.from_env(mode="report"))``;
- guard (report) with the fleet view on: ``metrics="emf"`` (its difference from the report
  guard is the metrics path's cost on a clean invocation);
- guard (strict): ``safehandler.guard(mode="strict")``;
- Powertools: ``Logger(service="bench").inject_lambda_context`` alone, logging silenced.

and on a handler that busy-waits 300 us, bare and under the report guard, to put the
overhead next to a handler that does some work (fewer calls per batch: it is 1,000x slower).

    .venv/bin/python benchmarks/overhead.py [--rounds 30] [--calls 2000] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _common

import safehandler
from safehandler.testing import FakeLambdaContext

BUSY_NS = 300_000  # the "real work" handler spins this long


def trivial(event: Any, context: Any) -> dict[str, int]:
    return {"statusCode": 200}


def busy(event: Any, context: Any) -> dict[str, int]:
    deadline = time.perf_counter_ns() + BUSY_NS
    while time.perf_counter_ns() < deadline:
        pass
    return {"statusCode": 200}


def powertools_wrapped(handler: Callable[..., Any]) -> Callable[..., Any]:
    from aws_lambda_powertools import Logger

    logger = Logger(service="bench", level="ERROR", logger_handler=logging.NullHandler())
    return logger.inject_lambda_context(handler)  # type: ignore[no-any-return]


@dataclass
class Variant:
    key: str
    label: str
    handler: Callable[..., Any]
    calls: int
    baseline: str  # the key of the bare variant it is compared to
    per_call_ns: list[float] = field(default_factory=list)


EMF_LINES: list[str] = []  # what the fleet view wrote during the run, kept off our stdout


def with_metrics(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The report guard with the fleet view on: the steady state's metrics path (one more
    observer: a counter, a clock read, a comparison every 100 calls). Its EMF lines go to a
    list, not to this script's stdout: in a steady run that is the first one only."""
    from safehandler.guard import engine_of

    guarded = safehandler.guard(policy=safehandler.Policy.from_env(mode="report", metrics="emf"))
    wrapped = guarded(handler)
    engine = engine_of(wrapped)
    assert engine is not None
    assert engine.metrics is not None
    engine.metrics._write = EMF_LINES.append
    return wrapped


def build_variants(calls: int, busy_calls: int) -> list[Variant]:
    report = safehandler.guard(policy=safehandler.Policy.from_env(mode="report"))
    strict = safehandler.guard(mode="strict")
    busy_report = safehandler.guard(policy=safehandler.Policy.from_env(mode="report"))
    return [
        Variant("bare", "bare trivial handler", trivial, calls, "bare"),
        Variant("guard", "`@safehandler.guard` (report)", report(trivial), calls, "bare"),
        Variant(
            "guard_metrics",
            '`@safehandler.guard(metrics="emf")` (the fleet view on)',
            with_metrics(trivial),
            calls,
            "bare",
        ),
        Variant("strict", '`@safehandler.guard(mode="strict")`', strict(trivial), calls, "bare"),
        Variant(
            "powertools",
            "Powertools `@logger.inject_lambda_context`",
            powertools_wrapped(trivial),
            calls,
            "bare",
        ),
        Variant("busy_bare", "bare 300 µs handler", busy, busy_calls, "busy_bare"),
        Variant(
            "busy_guard",
            "300 µs handler + `@safehandler.guard`",
            busy_report(busy),
            busy_calls,
            "busy_bare",
        ),
    ]


def time_batch(handler: Callable[..., Any], calls: int, event: Any, context: Any) -> int:
    """Nanoseconds for ``calls`` calls, the cyclic GC off."""
    loop = range(calls)
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in loop:
            handler(event, context)
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


def run(rounds: int, calls: int, busy_calls: int, warmup: int, seed: int) -> list[Variant]:
    variants = build_variants(calls, busy_calls)
    event: dict[str, Any] = {"path": "/bench", "httpMethod": "GET"}
    context = FakeLambdaContext(timeout_s=3600)
    for variant in variants:  # warm up: caches, lazy imports, the engine's baseline fd table
        time_batch(variant.handler, max(1, min(warmup, variant.calls)), event, context)
    rng = random.Random(seed)
    order = list(variants)
    for _ in range(rounds):
        rng.shuffle(order)
        gc.collect()
        for variant in order:
            elapsed = time_batch(variant.handler, variant.calls, event, context)
            variant.per_call_ns.append(elapsed / variant.calls)
    return variants


def summarize(variants: list[Variant]) -> list[dict[str, Any]]:
    medians = {v.key: statistics.median(v.per_call_ns) for v in variants}
    rows = []
    for v in variants:
        values = sorted(v.per_call_ns)
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        base = medians[v.baseline]
        rows.append(
            {
                "key": v.key,
                "variant": v.label,
                "calls_per_batch": v.calls,
                "rounds": len(values),
                "median_us": medians[v.key] / 1000,
                "q1_us": q1 / 1000,
                "q3_us": q3 / 1000,
                "min_us": values[0] / 1000,
                "baseline": v.baseline,
                "overhead_us": (medians[v.key] - base) / 1000,
                "ratio": medians[v.key] / base,
                "overhead_pct": (medians[v.key] - base) / base * 100,
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], rounds: int) -> str:
    lines = [
        _common.machine_line(info),
        "",
        f"Median per call over {rounds} interleaved rounds (IQR in brackets); overhead and "
        "ratio against the bare handler of the same kind.",
        "",
        "| variant | calls/batch | µs per call (median [IQR]) | overhead, µs | ratio to bare |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["key"] == row["baseline"]:
            overhead, ratio = "-", "1.00x"
        else:
            overhead = f"{row['overhead_us']:+.2f}"
            ratio = f"{row['ratio']:.2f}x"
            if row["baseline"] == "busy_bare":
                ratio += f" ({row['overhead_pct']:+.2f} %)"
        lines.append(
            f"| {row['variant']} | {row['calls_per_batch']:,} | {row['median_us']:.3f} "
            f"[{row['q1_us']:.3f}-{row['q3_us']:.3f}] | {overhead} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (30)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per batch (2000)")
    parser.add_argument(
        "--busy-calls",
        type=int,
        default=None,
        help="calls per batch for the 300 µs handler (default: calls // 10, at least 10)",
    )
    parser.add_argument("--warmup", type=int, default=500, help="warm-up calls per variant")
    parser.add_argument("--seed", type=int, default=1, help="seed of the round order")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    busy_calls = args.busy_calls or max(10, args.calls // 10)

    started = time.perf_counter()
    variants = run(args.rounds, args.calls, busy_calls, args.warmup, args.seed)
    rows = summarize(variants)
    info = _common.machine("aws-lambda-powertools")
    print(markdown(rows, info, args.rounds))
    print(f"\n(run took {time.perf_counter() - started:.1f} s; the fleet view wrote")
    print(f"{len(EMF_LINES)} EMF line(s) over all its calls)")
    if args.json:
        payload = {
            "machine": info,
            "settings": {
                "rounds": args.rounds,
                "calls": args.calls,
                "busy_calls": busy_calls,
                "busy_ns": BUSY_NS,
                "warmup": args.warmup,
                "seed": args.seed,
            },
            "results": rows,
            "per_call_ns": {v.key: v.per_call_ns for v in variants},
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
