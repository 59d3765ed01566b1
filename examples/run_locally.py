"""Run an example handler through AWS's runtime client (awslambdaric), as Lambda runs it."""

from pathlib import Path

from safehandler.testing import run_local

EXAMPLES = Path(__file__).resolve().parent

run = run_local("fixed_sqlite.handler", [{"n": 1}, {"n": 2}], task_root=EXAMPLES)
print(run.ok, [result.body for result in run.results])
