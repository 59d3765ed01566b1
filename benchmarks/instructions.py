"""The guard's cost per invocation in CPU instructions: a measure that a loaded machine does
not move.

Wall-clock figures (``overhead.py``, ``floor.py``) need a quiet machine. This script counts
instructions instead, with ``valgrind --tool=callgrind``: a child process calls a variant
``n`` times, another ``3n`` times, and the difference over ``2n`` is the count per invocation
(start-up, imports and the warm-up cancel out). The count is the same whatever else the
machine does; it varies a little from run to run with hash randomisation (dict layouts), so
each figure is the median of ``--repeat`` pairs.

Variants: the bare handler; the floor (``floor.floor``: two ``fstat`` of a held
``/proc/self/fd``, one ``pread`` of ``/proc/self/statm``, a thread count); the default guard
(report mode) on this kernel's path and on the path of Lambda's older kernel (no fd count:
``emulate_kernel_without_count``); the guard in strict mode; Powertools'
``inject_lambda_context`` alone. ``--tree DIR`` also measures another checkout of safehandler
(say, a worktree of an earlier commit) in the same run, for a before/after comparison.

    .venv/bin/python benchmarks/instructions.py [--calls 1000] [--repeat 3] [--tree DIR]
        [--json OUT]

A variant an older checkout cannot build (no kernel emulation there) is left out of its rows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from typing import Any

import _common

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("bare", "floor", "guard", "guard, kernel < 6.2", "strict", "powertools")
WARMUP = 500


def child(variant: str, calls: int) -> None:
    """Build the variant, warm it up, then call it ``calls`` times (what callgrind counts)."""
    import gc
    import logging

    def trivial(event: Any, context: Any) -> dict[str, int]:
        return {"statusCode": 200}

    handler: Any = trivial
    if variant == "floor":
        import floor

        handler = floor.floor(trivial)
    elif variant in ("guard", "guard, kernel < 6.2", "strict"):
        import safehandler

        if variant == "guard, kernel < 6.2":
            from safehandler.probes import fds

            fds.emulate_kernel_without_count(True)
        mode = "strict" if variant == "strict" else "report"
        handler = safehandler.guard(policy=safehandler.Policy.from_env(mode=mode))(trivial)
    elif variant == "powertools":
        from aws_lambda_powertools import Logger

        logger = Logger(service="bench", level="ERROR", logger_handler=logging.NullHandler())
        handler = logger.inject_lambda_context(trivial)
    from safehandler.testing import FakeLambdaContext

    context = FakeLambdaContext()
    event: dict[str, Any] = {}
    for _ in range(WARMUP):
        handler(event, context)
    gc.disable()
    for _ in range(calls):
        handler(event, context)


def instructions(variant: str, calls: int, tree: str | None) -> int:
    """Instructions of one child process, counted by callgrind."""
    env = _common.clean_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, HERE) if p)
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            variant,
            str(calls),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = re.search(r"refs:\s*([\d,]+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {proc.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def per_invocation(variant: str, calls: int, repeat: int, tree: str | None) -> float | None:
    try:
        counts = [
            (instructions(variant, 3 * calls, tree) - instructions(variant, calls, tree))
            / (2 * calls)
            for _ in range(repeat)
        ]
    except subprocess.CalledProcessError:
        return None  # this checkout cannot build the variant
    return statistics.median(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="n (1000): runs of n and 3n")
    parser.add_argument("--repeat", type=int, default=3, help="pairs per figure (3)")
    parser.add_argument("--tree", help="another safehandler checkout, measured beside this one")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("instructions.py: valgrind is not installed (apt-get install valgrind)")
        return 2
    trees = {"this checkout": None} | ({f"--tree {args.tree}": args.tree} if args.tree else {})
    results: dict[str, dict[str, float | None]] = {}
    for label, tree in trees.items():
        results[label] = {
            variant: per_invocation(variant, args.calls, args.repeat, tree)
            for variant in VARIANTS
            if tree is None or variant not in ("bare", "floor", "powertools")
        }
    here = {k: v for k, v in results["this checkout"].items() if v is not None}
    print(_common.machine_line(_common.machine("aws-lambda-powertools")))
    print(
        f"Instructions per invocation (callgrind, median of {args.repeat} pairs of "
        f"{args.calls:,} and {3 * args.calls:,} calls); over the bare handler and the floor.\n"
    )
    print("| checkout | variant | instructions | over bare | ratio to the floor's |")
    print("| --- | --- | ---: | ---: | ---: |")
    floor_over = here["floor"] - here["bare"]
    for label, figures in results.items():
        for variant, count in figures.items():
            if count is None:
                continue
            over = count - here["bare"]
            ratio = "-" if variant == "bare" else f"{over / floor_over:.2f}x"
            print(f"| {label} | {variant} | {count:,.0f} | {over:+,.0f} | {ratio} |")
    _common.write_json(args.json, {"calls": args.calls, "repeat": args.repeat, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
