"""Render the README's picture of the HTML soak report.

    .venv/bin/python docs/render_report.py [OUT_DIR]

Soaks ``examples/leaky_sqlite.py:handler`` 1,500 times in this process, under Lambda's
RLIMIT_NOFILE of 1,024 so the leak really runs into EMFILE, writes ``soak-report.html`` and
screenshots it to ``soak-report.png`` with headless Chromium (Debian: ``apt-get install
chromium``), in ``OUT_DIR`` (default: a new temporary directory; never a tracked file). To
update the README's picture, copy the PNG over ``docs/soak-report.png`` and commit it. Run it
from the repository root: sites are shown relative to it.
"""

from __future__ import annotations

import logging
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from safehandler.testing import LAMBDA_FD_LIMIT, load_handler, soak
from safehandler.testing.html_report import render_html

TARGET = "examples/leaky_sqlite.py:handler"
INVOCATIONS = 1500
WINDOW = "1200,1200"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else tempfile.mkdtemp(prefix="safehandler-report-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LAMBDA_FD_LIMIT, hard))
    # past EMFILE the fd probe cannot list /proc/self/fd and logs so: expected here
    logging.disable(logging.CRITICAL)
    handler = load_handler(TARGET)
    report = soak(handler, invocations=INVOCATIONS, name=TARGET)  # (released after)
    html_path = out / "soak-report.html"
    html_path.write_text(render_html(report, fd_limit=LAMBDA_FD_LIMIT), encoding="utf-8")
    print(report)
    print(f"wrote {html_path}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH: skipping the PNG", file=sys.stderr)
        return 1
    png_path = out / "soak-report.png"
    with tempfile.TemporaryDirectory(prefix="safehandler-chromium-") as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW}",
                f"--screenshot={png_path}",
                html_path.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
