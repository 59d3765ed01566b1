"""The public surface and the cold start."""

from __future__ import annotations

import subprocess
import sys

import safehandler


def test_public_api_is_exactly_all() -> None:
    assert sorted(safehandler.__all__) == [
        "ConfigError",
        "Finding",
        "GlobalMutationError",
        "LeakError",
        "LeakedConnectionError",
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
        safehandler.GlobalMutationError,
        safehandler.MemoryGrowthError,
    ):
        assert issubclass(leak, safehandler.LeakError)
        assert issubclass(leak, AssertionError)
        assert issubclass(leak, safehandler.SafeHandlerError)


def test_import_pulls_in_no_heavy_module() -> None:
    code = (
        "import sys, safehandler\n"
        "@safehandler.guard\n"
        "def handler(event, context): return 1\n"
        "handler({}, None)\n"
        "heavy = ('sqlalchemy', 'pymysql', 'aws_lambda_powertools', 'psutil', 'wrapt', 'boto3')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"
