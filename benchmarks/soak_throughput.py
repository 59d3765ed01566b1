"""Wall time of a 1,500-invocation leak check, four ways, on one trivial handler.

1. ``safehandler.testing.soak(handler, invocations=1500)``, in process;
2. ``safehandler.testing.soak_isolated("path/to/handler.py:handler", invocations=1500)``: the
   same soak in a child process under ``RLIMIT_NOFILE`` 1,024, which is what
   ``python -m safehandler soak TARGET --isolate`` runs (the CLI calls ``soak_isolated``);
   timed from outside (start-up, imports, the soak, the JSON report read back), and by the
   child's own soak timer;
3. a hand-written loop that reads ``psutil.Process().num_fds()``, ``threading.active_count()``
   and ``memory_info().rss`` before and after each call and compares them, in process;
4. pytest-memray: a generated test calls the handler 1,500 times under
   ``@pytest.mark.limit_leaks("1 MB")``, run as ``pytest --memray`` in a subprocess. The same
   test file without the marker, run without ``--memray``, is timed too: the difference is
   what memray adds over pytest's own start-up. The test's own call phase, as pytest timed
   it (JUnit XML, ``junit_duration_report=call``), is reported for both runs as well.

Every method builds a fresh ``FakeLambdaContext`` per call, as ``soak()`` does. Each
measurement is repeated ``--repeats`` times, interleaved; the table shows medians.

    .venv/bin/python benchmarks/soak_throughput.py [--invocations 1500] [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import psutil

from safehandler.testing import FakeLambdaContext, soak, soak_isolated


def trivial(event: Any, context: Any) -> dict[str, int]:
    return {"statusCode": 200}


# -- the in-process methods -------------------------------------------------------------


def run_soak(invocations: int) -> dict[str, Any]:
    start = time.perf_counter()
    report = soak(trivial, invocations=invocations)
    wall = time.perf_counter() - start
    assert report.invocations == invocations, report
    return {"seconds": wall, "inner_seconds": report.seconds, "verdict": report.verdict}


HANDLER_FILE = """\
def handler(event, context):
    return {"statusCode": 200}
"""


def run_isolated(target: str, invocations: int) -> dict[str, Any]:
    start = time.perf_counter()
    report = soak_isolated(target, invocations=invocations)
    wall = time.perf_counter() - start
    assert report.invocations == invocations, report
    return {"seconds": wall, "inner_seconds": report.seconds, "verdict": report.verdict}


def run_psutil_loop(invocations: int) -> dict[str, Any]:
    """What one would write by hand: three counters before and after each call, compared."""
    start = time.perf_counter()
    process = psutil.Process()
    rose: list[tuple[int, str, int, int]] = []
    rss_grew = 0
    for invocation in range(1, invocations + 1):
        fds, threads, rss = (process.num_fds(), threading.active_count(), process.memory_info().rss)
        trivial({}, FakeLambdaContext())
        fds_after, threads_after, rss_after = (
            process.num_fds(),
            threading.active_count(),
            process.memory_info().rss,
        )
        if fds_after > fds:
            rose.append((invocation, "fds", fds, fds_after))
        if threads_after > threads:
            rose.append((invocation, "threads", threads, threads_after))
        if rss_after > rss:
            rss_grew += 1
    wall = time.perf_counter() - start
    return {
        "seconds": wall,
        "verdict": "leak" if rose else "clean",
        "counter_rises": len(rose),
        "rss_grew_in": rss_grew,
    }


# -- pytest-memray, in a subprocess ------------------------------------------------------

_TEST_TEMPLATE = """\
import pytest

from safehandler.testing import FakeLambdaContext


def handler(event, context):
    return {{"statusCode": 200}}

{marker}
def test_soak():
    for _ in range({invocations}):
        handler({{}}, FakeLambdaContext())
"""


def write_tests(directory: Path, invocations: int) -> tuple[Path, Path]:
    memray_test = directory / "test_memray_soak.py"
    plain_test = directory / "test_plain_soak.py"
    memray_test.write_text(
        _TEST_TEMPLATE.format(marker='@pytest.mark.limit_leaks("1 MB")', invocations=invocations)
    )
    plain_test.write_text(_TEST_TEMPLATE.format(marker="", invocations=invocations))
    return memray_test, plain_test


def run_pytest(test_file: Path, *, memray: bool) -> dict[str, Any]:
    directory = test_file.parent
    junit = directory / f"{test_file.stem}.xml"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(directory),
        "-o",
        "junit_duration_report=call",
        "--junitxml",
        str(junit),
        str(test_file),
    ]
    if memray:
        argv.insert(argv.index("--rootdir"), "--memray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=directory, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"pytest failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}\n{done.stderr}"
        )
    case = ET.parse(junit).getroot().find(".//testcase")
    call = float(case.get("time", "nan")) if case is not None else float("nan")
    return {"seconds": wall, "call_seconds": call}


# -- the run -------------------------------------------------------------------------


def measure(invocations: int, repeats: int) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {
        "soak": [],
        "isolated": [],
        "psutil": [],
        "pytest": [],
        "pytest_memray": [],
    }
    with tempfile.TemporaryDirectory(prefix="safehandler-bench-") as tmp:
        memray_test, plain_test = write_tests(Path(tmp), invocations)
        handler_file = Path(tmp) / "soak_target.py"
        handler_file.write_text(HANDLER_FILE)
        target = f"{handler_file}:handler"
        run_isolated(target, 50)  # warm up: bytecode of the target
        run_soak(50)  # warm up the in-process paths (imports, first-call caches)
        run_psutil_loop(50)
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("soak", lambda: run_soak(invocations)),
            ("isolated", lambda: run_isolated(target, invocations)),
            ("psutil", lambda: run_psutil_loop(invocations)),
            ("pytest", lambda: run_pytest(plain_test, memray=False)),
            ("pytest_memray", lambda: run_pytest(memray_test, memray=True)),
        ]
        for _ in range(repeats):
            for key, step in steps:
                results[key].append(step())
    return results


def median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(run[key] for run in runs)


def summarize(results: dict[str, list[dict[str, Any]]], invocations: int) -> dict[str, Any]:
    soak_s = median(results["soak"])
    pytest_s = median(results["pytest"])
    memray_s = median(results["pytest_memray"])
    memray_extra = statistics.median(
        m["seconds"] - p["seconds"]
        for m, p in zip(results["pytest_memray"], results["pytest"], strict=True)
    )
    # (label, seconds, whether seconds / invocations means anything: not with start-up in it)
    rows = [
        ("`safehandler.testing.soak()` (in process)", soak_s, True),
        (
            "`soak_isolated()` / `soak --isolate` (child process, RLIMIT_NOFILE 1,024, wall)",
            median(results["isolated"]),
            False,
        ),
        (
            "`soak_isolated()`: the child's soak loop (its own timer)",
            median(results["isolated"], "inner_seconds"),
            True,
        ),
        ("hand-written psutil loop (in process)", median(results["psutil"]), True),
        ("pytest subprocess, no marker, no `--memray` (wall)", pytest_s, False),
        ('pytest subprocess, `--memray` + `limit_leaks("1 MB")` (wall)', memray_s, False),
        ("memray's cost: memray run minus plain run (paired)", memray_extra, True),
        (
            "test call phase only, plain pytest (JUnit time)",
            median(results["pytest"], "call_seconds"),
            True,
        ),
        (
            "test call phase only, under memray (JUnit time)",
            median(results["pytest_memray"], "call_seconds"),
            True,
        ),
    ]
    return {
        "rows": [
            {
                "method": label,
                "seconds": seconds,
                "us_per_invocation": seconds / invocations * 1e6 if per_call else None,
                "ratio_to_soak": seconds / soak_s,
                "memray_over_this": memray_s / seconds,
            }
            for label, seconds, per_call in rows
        ],
        "soak_inner_seconds": median(results["soak"], "inner_seconds"),
        "verdicts": {
            "soak": results["soak"][-1]["verdict"],
            "isolated": results["isolated"][-1]["verdict"],
            "psutil": results["psutil"][-1]["verdict"],
        },
    }


def markdown(summary: dict[str, Any], info: dict[str, Any], invocations: int, repeats: int) -> str:
    lines = [
        _common.machine_line(info),
        "",
        f"{invocations:,} invocations of a trivial handler; median of {repeats} interleaved "
        "repeats.",
        "",
        "| method | seconds | µs per invocation | ratio to `soak()` "
        "| `pytest --memray` (wall) / this |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in summary["rows"]:
        per_call = row["us_per_invocation"]
        per_call_text = "-" if per_call is None else f"{per_call:,.1f}"
        lines.append(
            f"| {row['method']} | {row['seconds']:.3f} | {per_call_text} "
            f"| {row['ratio_to_soak']:.2f}x | {row['memray_over_this']:.1f}x |"
        )
    lines += [
        "",
        f"soak() verdict: {summary['verdicts']['soak']} (its own timer: "
        f"{summary['soak_inner_seconds']:.3f} s); soak_isolated() verdict: "
        f"{summary['verdicts']['isolated']}; psutil loop verdict: "
        f"{summary['verdicts']['psutil']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=1500, help="calls per method (1500)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per method (5)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.invocations < 1 or args.repeats < 1:
        parser.error("--invocations and --repeats must be at least 1")

    started = time.perf_counter()
    results = measure(args.invocations, args.repeats)
    summary = summarize(results, args.invocations)
    info = _common.machine("psutil", "pytest", "memray", "pytest-memray")
    print(markdown(summary, info, args.invocations, args.repeats))
    print(f"\n(run took {time.perf_counter() - started:.1f} s)")
    if args.json:
        payload = {
            "machine": info,
            "settings": {"invocations": args.invocations, "repeats": args.repeats},
            "summary": summary,
            "runs": results,
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
