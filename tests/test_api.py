"""The public surface and the cold start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import safehandler


def test_public_api_is_exactly_all() -> None:
    assert sorted(safehandler.__all__) == [
        "ConfigError",
        "Finding",
        "GlobalMutationError",
        "LeakError",
        "LeakedConnectionError",
        "LeakedProcessError",
        "LeakedThreadError",
        "MemoryGrowthError",
        "Policy",
        "SafeHandlerError",
        "UnclosedFdError",
        "UnclosedSocketError",
        "__version__",
        "allow_global",
        "guard",
    ]
    for name in safehandler.__all__:
        assert getattr(safehandler, name) is not None


def test_error_tree() -> None:
    assert issubclass(safehandler.ConfigError, ValueError)
    for leak in (
        safehandler.UnclosedFdError,
        safehandler.UnclosedSocketError,
        safehandler.LeakedThreadError,
        safehandler.LeakedConnectionError,
        safehandler.LeakedProcessError,
        safehandler.GlobalMutationError,
        safehandler.MemoryGrowthError,
    ):
        assert issubclass(leak, safehandler.LeakError)
        assert issubclass(leak, AssertionError)
        assert issubclass(leak, safehandler.SafeHandlerError)


def test_import_pulls_in_no_heavy_module(tmp_path: Path) -> None:
    """Nor the stdlib modules that cost cold start and that safehandler avoids on purpose:
    dataclasses (and through it inspect, ast, dis), importlib.resources (tempfile, shutil,
    random, pathlib), asyncio."""
    code = (
        "import sys, safehandler\n"
        "@safehandler.guard\n"
        "def handler(event, context): return 1\n"
        "handler({}, None)\n"
        "heavy = ('sqlalchemy', 'pymysql', 'aws_lambda_powertools', 'psutil', 'wrapt', 'boto3',\n"
        "         'dataclasses', 'inspect', 'importlib.resources', 'tempfile', 'asyncio')\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))\n"
    )
    # (nor measured by coverage, whose own imports would be counted)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEHANDLER_", "COVERAGE_"))}
    env["TMPDIR"] = str(tmp_path)  # where the health state goes by default
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "safehandler-health.json").exists() is False  # one file per process
    assert [p.name.split(".")[0] for p in tmp_path.glob("safehandler-health.*.json")] == [
        "safehandler-health"
    ]
