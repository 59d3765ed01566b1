"""Fidelity: every init and invocation error reads under the layer as it reads without it.

Each case runs under AWS's real awslambdaric against the local Runtime API twice, without and
with safehandler's exec wrapper, and the outcomes must be equal: the init error or the
invocation error (``errorType``, ``errorMessage``), or the runtime's exit status with the
invocation left unanswered. Under the layer, a bad ``SAFEHANDLER_*`` variable is one error line
and the function runs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from safehandler import Policy, layer
from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

pytest.importorskip("awslambdaric")

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "safehandler" / "exec_wrapper.sh"

MODULES = {
    "fine": """
        import os, sys


        def handler(event, context):
            return {"ok": True}


        not_callable = 42


        class OrderError(Exception):
            pass


        def custom(event, context):
            raise OrderError("order 17 is not payable")


        def exits_3(event, context):
            sys.exit(3)


        def exits_75(event, context):
            sys.exit(75)  # the status the wrapper once took for a recycle
    """,
    "syntax": """
        def handler(event, context:
            return 1
    """,
    "raises_at_import": """
        raise RuntimeError("the config bucket is unreachable")
    """,
    "attribute_error_at_import": """
        import os
        os.no_such_function()
    """,
    "imports_a_missing_dependency": """
        import no_such_dependency
    """,
}

CASES = {
    "module not found": "no_such_module.handler",
    "dependency not found": "imports_a_missing_dependency.handler",
    "handler missing": "fine.no_such_handler",
    "syntax error": "syntax.handler",
    "exception at import": "raises_at_import.handler",
    "AttributeError at import": "attribute_error_at_import.handler",
    "non-callable handler": "fine.not_callable",
    "custom exception": "fine.custom",
    "sys.exit(3)": "fine.exits_3",
    "sys.exit(75)": "fine.exits_75",
    "success": "fine.handler",
}


class Outcome(NamedTuple):
    init_error: tuple[str, str] | None
    result: tuple[bool, str | None, Any] | None
    exit_status: int | None
    unanswered: int


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    for name, source in MODULES.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    return root


def outcome(
    root: Path, handler: str, wrapper: Path | None, env: dict[str, str], python: str | None = None
) -> Outcome:
    with LocalRuntimeAPI([{"n": 1}]) as api:
        runtime = run_runtime(
            handler, task_root=root, api=api, wrapper=wrapper, env=env, python=python
        )
        # polled: a process exit is not an event the API's waits wake up for
        deadline = time.monotonic() + 60
        while not (api.results or api.init_errors or runtime.poll() is not None):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05)  # an exit after the answer: let it land
        init = api.init_errors[0] if api.init_errors else None
        result = api.results[0] if api.results else None
        return Outcome(
            (init.error_type, init.body["errorMessage"]) if init else None,
            (
                result.ok,
                result.error_type,
                result.body if result.ok else result.body["errorMessage"],
            )
            if result
            else None,
            runtime.poll() if init is None else runtime.wait(timeout=30),
            len(api.unanswered),
        )


@pytest.mark.parametrize("case", list(CASES))
def test_the_layer_reports_what_lambda_reports(case: str, task_root: Path) -> None:
    env = {"TMPDIR": str(task_root)}
    native = outcome(task_root, CASES[case], None, env)
    layered = outcome(task_root, CASES[case], WRAPPER, env)
    assert layered == native
    assert native.init_error or native.result or native.exit_status  # something to compare


CURRENT = "{}.{}".format(*sys.version_info[:2])


@pytest.fixture(scope="module")
def other_pythons(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each other supported Python on this machine, in a venv of its own with awslambdaric
    (a binary wheel: a few seconds each); safehandler comes from this checkout."""
    found = {}
    for python in layer.find_interpreters():
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if version == CURRENT:
            continue
        venv = tmp_path_factory.mktemp(f"python{version}")
        interpreter = venv / "bin" / "python"
        try:
            subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
            pip = [str(interpreter), "-m", "pip", "install", "-q", "--only-binary=:all:"]
            subprocess.run(
                [*pip, "awslambdaric"],
                check=True,
                timeout=300,
                capture_output=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            continue  # no wheel for it here: that Python is skipped, not failed
        found[version] = str(interpreter)
    return found


@pytest.mark.parametrize("version", [v for v in layer.PYTHONS if v != CURRENT])
def test_the_layer_reports_what_lambda_reports_on_other_pythons(
    version: str, other_pythons: dict[str, str], task_root: Path
) -> None:
    if version not in other_pythons:
        pytest.skip(f"no Python {version} with awslambdaric on this machine")
    env = {"TMPDIR": str(task_root), "PYTHONPATH": str(ROOT)}
    python = other_pythons[version]
    for case, handler in CASES.items():
        native = outcome(task_root, handler, None, env, python)
        layered = outcome(task_root, handler, WRAPPER, env, python)
        assert layered == native, case
        assert native.init_error or native.result or native.exit_status, case


def test_the_matrix_names_the_errors_lambda_names(task_root: Path) -> None:
    """The native outcomes, pinned: so the comparison above is of the right things."""
    env = {"TMPDIR": str(task_root)}
    seen = {case: outcome(task_root, handler, None, env) for case, handler in CASES.items()}
    assert seen["module not found"].init_error == (
        "Runtime.ImportModuleError",
        "Unable to import module 'no_such_module': No module named 'no_such_module'",
    )
    assert seen["handler missing"].init_error == (
        "Runtime.HandlerNotFound",
        "Handler 'no_such_handler' missing on module 'fine'",
    )
    assert seen["syntax error"].init_error[0] == "Runtime.UserCodeSyntaxError"  # type: ignore[index]
    assert seen["exception at import"].init_error == (
        "RuntimeError",
        "the config bucket is unreachable",
    )
    assert seen["AttributeError at import"].init_error == (
        "AttributeError",
        "module 'os' has no attribute 'no_such_function'",
    )
    assert seen["non-callable handler"].result == (
        False,
        "TypeError",
        "'int' object is not callable",
    )
    assert seen["custom exception"].result == (False, "OrderError", "order 17 is not payable")
    assert seen["sys.exit(3)"][2:] == (3, 1)
    assert seen["sys.exit(75)"][2:] == (75, 1)
    assert seen["success"].result == (True, None, {"ok": True})


GUARD_STATE = """
import os, sys


def handler(event, context):
    from safehandler.guard import engine_of
    from safehandler import runtime

    engine = engine_of(runtime.handler)
    return {"fd_threshold": engine.policy.fd_threshold, "mode": engine.policy.mode,
            "probes": sorted(engine.policy.probes)}
"""

BAD_SETTINGS = {
    "SAFEHANDLER_FD_THRESHOLD": ("1.5", "must be a number in (0, 1]"),
    "SAFEHANDLER_MODE": ("Report", "must be report, strict or off"),
    "SAFEHANDLER_PROBES": ("fds,sockets", "must be a comma-separated, non-empty subset of"),
    "SAFEHANDLER_FD_TRESHOLD": ("0.6", "did you mean SAFEHANDLER_FD_THRESHOLD?"),
}


@pytest.mark.parametrize("variable", list(BAD_SETTINGS))
def test_a_bad_setting_is_one_error_line_and_the_function_runs(
    variable: str, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(GUARD_STATE)
    value, accepted = BAD_SETTINGS[variable]
    env = {variable: value, "TMPDIR": str(tmp_path)}
    with LocalRuntimeAPI([{"n": 1}, {"n": 2}]) as api:
        runtime = run_runtime("app.handler", task_root=tmp_path, api=api, wrapper=WRAPPER, env=env)
        assert api.wait_for(2, timeout=60), runtime.stderr_text()
        runtime.stop()
    assert api.init_errors == []
    assert [r.ok for r in api.results] == [True, True]
    # guarded, with the defaults for what was wrong
    assert api.results[0].body == {
        "fd_threshold": 0.5,
        "mode": "report",
        "probes": sorted(Policy().probes),
    }
    output = runtime.stdout_text() + runtime.stderr_text()
    # (the init line names every setting with its effective value: not this one)
    lines = [ln for ln in output.splitlines() if variable in ln and "safehandler.init" not in ln]
    assert len(lines) == 1, output
    [line] = lines
    assert "ERROR" in line
    assert f"{variable}={value!r}" in line
    assert accepted in line


def test_the_decorator_in_code_fails_open_under_the_layer_only(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import safehandler\n\n\n@safehandler.guard\ndef handler(event, context):\n"
        "    return 'ran'\n"
    )
    env = {"SAFEHANDLER_MODE": "Report", "TMPDIR": str(tmp_path)}
    native = outcome(tmp_path, "app.handler", None, env)
    assert native.init_error == (
        "ConfigError",
        "SAFEHANDLER_MODE='Report': must be report, strict or off",
    )
    layered = outcome(tmp_path, "app.handler", WRAPPER, env)
    assert layered.result == (True, None, "ran")


def test_an_error_line_is_json_safe(tmp_path: Path) -> None:
    # a value with quotes and a newline stays one line
    (tmp_path / "app.py").write_text(GUARD_STATE)
    env = {"SAFEHANDLER_MODE": 'a"b\nc', "TMPDIR": str(tmp_path)}
    with LocalRuntimeAPI([{"n": 1}]) as api:
        runtime = run_runtime("app.handler", task_root=tmp_path, api=api, wrapper=WRAPPER, env=env)
        assert api.wait_for(1, timeout=60)
        runtime.stop()
    assert api.results[0].ok
    output = runtime.stdout_text() + runtime.stderr_text()
    lines = [ln for ln in output.splitlines() if "MODE='a" in ln]
    assert len(lines) == 1, output
    assert repr('a"b\nc') in lines[0]
