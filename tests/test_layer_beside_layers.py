"""The layer beside other layers: a function's dependencies load exactly as without it.

Lambda's managed runtime (emulated: ``run_runtime(opt=...)``) adds /opt's site directories,
``.pth`` files processed, only while ``PYTHONPATH`` is unset. A dependencies layer in the
documented layout is imported with and without safehandler's layer, and under another exec
wrapper composed with safehandler's.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime
from tests._layer import build_and_unpack, dependencies_layer, merged_opt

pytest.importorskip("awslambdaric")

APP = """
import os, sys
import depslib, via_pth


def handler(event, context):
    safehandler = sys.modules.get("safehandler")
    return {
        "deps": depslib.VALUE,
        "pth": via_pth.VALUE,
        "safehandler": getattr(safehandler, "__file__", None),
        "handler": os.environ["_HANDLER"],
        "pythonpath": os.environ.get("PYTHONPATH"),
        "wrapped_by": event.get("wrapped_by"),
    }
"""

# What OpenTelemetry's Python exec wrapper does, in small: its own handler in front of the
# original one (ORIG_HANDLER), then the runtime command.
OTHER_WRAPPER = """#!/bin/bash
export ORIG_HANDLER="$_HANDLER"
export _HANDLER="other_front.handler"
exec "$@"
"""
OTHER_FRONT = """
import importlib, os

module, name = os.environ["ORIG_HANDLER"].rsplit(".", 1)
inner = getattr(importlib.import_module(module), name)


def handler(event, context):
    return inner({**event, "wrapped_by": "other"}, context)
"""


@pytest.fixture(scope="module")
def safehandler_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_and_unpack(tmp_path_factory.mktemp("layer"))


def task_root(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "app.py").write_text(textwrap.dedent(APP))
    return root


def answer(root: Path, opt: Path, *, wrapper: Path | None = None, **env: str) -> Any:
    with LocalRuntimeAPI([{}]) as api:
        run_runtime("app.handler", task_root=root, api=api, opt=opt, wrapper=wrapper, env=env)
        assert api.wait_until(lambda: api.results or api.init_errors, timeout=60)
        return (api.results or api.init_errors)[0]


def test_a_dependencies_layer_loads_without_safehandlers_layer(tmp_path: Path) -> None:
    opt = dependencies_layer(tmp_path / "opt")
    result = answer(task_root(tmp_path), opt)
    assert result.ok, result.body
    assert result.body["deps"] == "from the dependencies layer"
    assert result.body["pth"] == "through a .pth file"
    assert result.body["safehandler"] is None  # not installed: only /opt and the task root


def test_the_emulation_hides_the_dependencies_layer_when_pythonpath_is_set(
    tmp_path: Path,
) -> None:
    # what the wrapper's old PYTHONPATH export did to every other layer
    opt = dependencies_layer(tmp_path / "opt")
    error = answer(task_root(tmp_path), opt, PYTHONPATH=str(opt / "python"))
    assert error.error_type == "Runtime.ImportModuleError"
    assert error.body["errorMessage"] == "Unable to import module 'app': No module named 'depslib'"


def test_a_dependencies_layer_loads_beside_safehandlers_layer(
    tmp_path: Path, safehandler_layer: Path
) -> None:
    opt = merged_opt(tmp_path / "opt", safehandler_layer, dependencies_layer(tmp_path / "deps"))
    result = answer(task_root(tmp_path), opt, wrapper=opt / "safehandler")
    assert result.ok, result.body
    assert result.body["deps"] == "from the dependencies layer"
    assert result.body["pth"] == "through a .pth file"
    assert result.body["safehandler"] == str(opt / "python" / "safehandler" / "__init__.py")
    assert result.body["handler"] == "safehandler.runtime.handler"
    assert result.body["pythonpath"] is None  # the environment is the function's own


def test_another_exec_wrapper_composes_with_safehandlers(
    tmp_path: Path, safehandler_layer: Path
) -> None:
    opt = merged_opt(tmp_path / "opt", safehandler_layer, dependencies_layer(tmp_path / "deps"))
    other = opt / "other-wrapper"
    other.write_text(OTHER_WRAPPER)
    other.chmod(0o755)
    root = task_root(tmp_path)
    (root / "other_front.py").write_text(textwrap.dedent(OTHER_FRONT))
    # the README's composition: one wrapper script running safehandler's, then the other
    composed = tmp_path / "wrapper"
    composed.write_text(f'#!/bin/bash\nexec {opt / "safehandler"} {other} "$@"\n')
    composed.chmod(0o755)
    result = answer(root, opt, wrapper=composed)
    assert result.ok, result.body
    assert result.body["wrapped_by"] == "other"
    assert result.body["deps"] == "from the dependencies layer"
    # the other wrapper's front runs the handler it found in _HANDLER: safehandler's entry
    assert result.body["safehandler"] == str(opt / "python" / "safehandler" / "__init__.py")
    assert result.body["handler"] == "other_front.handler"
