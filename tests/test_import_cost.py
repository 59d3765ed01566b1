"""``import safehandler`` loads no costly stdlib module: counted, not timed.

A cold start pays for every module imported. These are the ones safehandler used to pull in
(about 20 ms of the 35 it took, measured with ``python -X importtime``) and now loads only
when they are needed: typing (its annotations are for mypy; records are built on
``collections.namedtuple``), logging and json (with the first line told), re (with the first
regex), signal and its enums, traceback (through logging), sysconfig (with the first site
looked at), enum (through re and signal), contextlib, and the heavier ones it never needed
at import. A fresh interpreter (``python -c pass``) is the baseline: what the interpreter
and the environment's site hooks load anyway does not count against safehandler.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

AVOIDED = (
    "typing",
    "logging",
    "re",
    "json",
    "signal",
    "traceback",
    "sysconfig",
    "enum",
    "inspect",
    "asyncio",
    "email",
    "http",
    "contextlib",
    "dataclasses",
)

LIST_MODULES = "import sys; print('\\n'.join(sorted(sys.modules)))"


def _modules_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after ``code`` (nothing measured: coverage
    and pytest options would load their own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "SAFEHANDLER_"))}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\n{LIST_MODULES}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return set(proc.stdout.split())


def _avoided_loaded(code: str) -> list[str]:
    new = _modules_after(code) - _modules_after("pass")
    return sorted(m for m in new if m.split(".")[0] in AVOIDED)


def test_import_loads_none_of_the_costly_modules() -> None:
    assert _avoided_loaded("import safehandler") == []


def test_the_count_sees_the_import() -> None:
    new = _modules_after("import safehandler") - _modules_after("pass")
    assert {"safehandler", "safehandler.guard", "safehandler._records"} <= new
    assert not new & {"sys", "builtins", "os"}  # the baseline's modules are not counted


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import safehandler, logging", {"logging", "traceback"}),
        ("import safehandler, typing", {"typing", "re"}),
        ("import safehandler, json", {"json", "json.decoder"}),
        ("import safehandler, signal", {"signal", "enum"}),
    ],
)
def test_a_costly_import_is_seen(code: str, expected: set[str]) -> None:
    """The leaking twin: the same count, with an import it must catch."""
    assert expected <= set(_avoided_loaded(code))
