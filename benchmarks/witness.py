"""The cost of naming the line that changed global state: one invocation of a small handler
(a 20-iteration loop, a ``json.dumps``, a list append: about 45 line events of user code)
called plainly, traced by the witness for one part of the state (what production does for
three invocations after a change came without a line), and traced for every part (what
strict tests and soaks do for their first two invocations). Each figure is the best of
``--rounds`` rounds of ``--calls`` calls, in one process.

    .venv/bin/python benchmarks/witness.py [--rounds 5] [--calls 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common

from safehandler.probes.globals._probe import GlobalsProbe

HANDLER = """
import json, os

ITEMS = []


def handler(event, context):
    total = 0
    for n in range(20):
        total += n
    body = json.dumps({"n": total, "home": os.environ.get("HOME")})
    ITEMS.append(len(body))
    return {"statusCode": 200, "body": body}
"""


def _traced(probe: GlobalsProbe, handler: Callable[..., Any]) -> Callable[[], None]:
    witness = probe._witness

    def call() -> None:
        witness.begin()
        handler({}, None)
        witness.end()

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--calls", type=int, default=200, help="calls per round (200)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="safehandler-witness-"))
    (folder / "witness_app.py").write_text(textwrap.dedent(HANDLER), encoding="utf-8")
    sys.path.insert(0, str(folder))
    import witness_app  # type: ignore[import-not-found]

    total = args.rounds * args.calls + 10
    one = GlobalsProbe(["witness_app"])
    one._watch("witness_app", total)
    every = GlobalsProbe(["witness_app"])
    every._survey()
    for name in list(every._witness._left):
        every._witness._left[name] = total
    variants = {
        "plain call": lambda: witness_app.handler({}, None),
        "traced, one part (production)": _traced(one, witness_app.handler),
        "traced, every part (strict, soaks)": _traced(every, witness_app.handler),
    }
    figures = {
        name: min(timeit.repeat(call, number=args.calls, repeat=args.rounds)) / args.calls * 1e6
        for name, call in variants.items()
    }
    print(_common.machine_line(_common.machine()))
    print("| variant | us per invocation |\n| --- | ---: |")
    for name, micros in figures.items():
        print(f"| {name} | {micros:,.1f} |")
    parts = len(every._witness._parts)
    print(f"\n({parts} parts of the state surveyed)")
    _common.write_json(args.json, {"us_per_invocation": figures, "parts": parts})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
