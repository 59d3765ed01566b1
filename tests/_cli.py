"""Run ``safehandler soak`` as a user does: a subprocess, in a scratch copy of the examples.

Everything a soak writes (its report, the health state, an example's SQLite database) lands in
the test's ``tmp_path``: the working directory and ``TMPDIR`` both point there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENT = "examples/events/api_gateway.json"


def workdir(tmp_path: Path) -> Path:
    """``tmp_path`` with a copy of ``examples/`` in it (once)."""
    if not (tmp_path / "examples").exists():
        shutil.copytree(
            ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("iac")
        )
    return tmp_path


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), **extra}


def run(
    *args: str, tmp_path: Path, timeout: float = 300, **extra_env: str
) -> tuple[int, str, str, dict[str, Any] | None]:
    """``safehandler soak ARGS --json`` from ``tmp_path``: exit code, stdout, stderr, report."""
    out = tmp_path / "report.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "soak", *args, "--json", str(out)],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(tmp_path, **extra_env),
        check=False,
    )
    report = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout, proc.stderr, report
