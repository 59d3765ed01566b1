"""The cost of watching a large global: a soak of a handler that holds a 10,000-key nested
dict of lists, next to a soak of a clean trivial handler, in the same run; and of a handler
module of 50 functions, each with a mutable default, a keyword default and a dict attribute
(what its functions hold is watched too: 150 containers, none of them touched).

A soak watches the handler's globals in deep mode (content fingerprints of its containers
after every invocation). Each fingerprint reads at most 1,024 items of a container, and a
snapshot at most 16,384 over all of them, so the large global costs about what a small one
does. Both handlers live in a module of their own (as a Lambda task root's app.py would),
and each soak runs ``--invocations`` invocations (1,500 by default); the figure is the median
of ``--rounds`` rounds, the soaks interleaved.

    .venv/bin/python benchmarks/globals_cost.py [--rounds 5] [--invocations 1500] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import _common

from safehandler.testing import soak

HANDLER = "def handler(event, context):\n    return len(STATE)\n"
FUNCTIONS = "".join(
    f"def f{i}(event, context, _seen=[], *, _by_key={{}}):\n    return _seen\n\n"
    f"f{i}.meta = {{'n': {i}}}\n"
    for i in range(50)
)


def handler_holding(state: dict[str, Any], name: str, source: str = "") -> Callable[..., Any]:
    module = types.ModuleType(name)
    module.__file__ = f"/var/task/{name}.py"
    module.STATE = state  # type: ignore[attr-defined]
    sys.modules[name] = module
    exec(compile(source + HANDLER, module.__file__, "exec"), vars(module))
    return module.handler  # type: ignore[no-any-return]


def timed_soak(handler: Callable[..., Any], invocations: int) -> float:
    started = time.perf_counter()
    report = soak(handler, invocations=invocations)
    elapsed = time.perf_counter() - started
    if report.findings:
        raise SystemExit(f"a clean handler had findings: {report.findings[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--invocations", type=int, default=1500, help="per soak (1500)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    args = parser.parse_args()
    large = {f"key{i}": [i, i + 1, [i]] for i in range(10_000)}
    variants = {
        "clean": lambda: handler_holding({"a": [1]}, "bench_globals_clean"),
        "large": lambda: handler_holding(large, "bench_globals_large"),
        "functions": lambda: handler_holding({"a": [1]}, "bench_globals_functions", FUNCTIONS),
    }
    times: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(args.rounds):
        for key, make in variants.items():
            times[key].append(timed_soak(make(), args.invocations))
    medians = {key: statistics.median(values) for key, values in times.items()}
    info = _common.machine()
    print(f"{info['date']}, {info['python']}, load {info['load_1min']}")
    print()
    print(f"| soak of {args.invocations:,} invocations | s (median of {args.rounds}) | ratio |")
    print("| --- | ---: | ---: |")
    labels = {
        "clean": "trivial handler, a one-item global",
        "large": "the same holding a 10,000-key dict of lists",
        "functions": "the trivial handler beside 50 functions holding 3 containers each",
    }
    for key, label in labels.items():
        print(f"| {label} | {medians[key]:.3f} | {medians[key] / medians['clean']:.2f}x |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"machine": info, "seconds": times, "medians": medians}, out, indent=2)


if __name__ == "__main__":
    main()
