"""Finding what to soak: handlers by their Lambda-style name, events from JSON files."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TargetError

__all__ = ["import_file", "load_event", "load_events", "load_handler"]


def load_handler(target: str) -> Callable[..., Any]:
    """The handler a target names, as Lambda would import it.

    ``package.module:function`` or ``path/to/file.py:function``, and Lambda's own handler
    setting: ``package.module.function`` or ``path/to/file.function``. A file's directory goes
    first on ``sys.path``, as the task root does on Lambda.
    """
    module_part, attribute = _split(target)
    path = Path(module_part if module_part.endswith(".py") else module_part + ".py")
    if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
        module = import_file(path)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise TargetError(f"cannot import module {module_part!r}: {exc}") from None
    handler: Any = module
    for name in attribute.split("."):
        handler = getattr(handler, name, None)
        if handler is None:
            raise TargetError(f"{module_part!r} has no attribute {attribute!r}")
    if not callable(handler):
        raise TargetError(f"{target!r} is not callable")
    return handler  # type: ignore[no-any-return]


_FORMS = "module:function, path/to/file.py:function, or Lambda's module.function"


def _split(target: str) -> tuple[str, str]:
    """(module or file, attribute path) of any of the accepted forms."""
    module_part, sep, attribute = target.rpartition(":")
    if sep:
        if not module_part or not attribute:
            raise TargetError(f"{target!r}: expected {_FORMS}")
        return module_part, attribute
    if target.endswith(".py"):
        raise TargetError(f"{target!r}: expected {_FORMS} (name the function: {target}:handler)")
    # Lambda's form: the last dot separates the function (awslambdaric splits it so)
    module_part, dot, attribute = target.rpartition(".")
    if not dot or not module_part or not attribute:
        raise TargetError(f"{target!r}: expected {_FORMS}")
    return module_part, attribute


def import_file(path: Path) -> Any:
    """The module at ``path``, its directory first on ``sys.path`` (as Lambda's task root)."""
    if not path.is_file():
        raise TargetError(f"no such file: {path}")
    directory = str(path.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TargetError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_event(path: str | os.PathLike[str]) -> Any:
    """One event from a JSON file."""
    try:
        with open(path, encoding="utf-8") as event_file:
            return json.load(event_file)
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read event {os.fspath(path)!r}: {exc}") from None


def load_events(path: str | os.PathLike[str]) -> list[tuple[str, Any]]:
    """``(label, event)`` pairs: one JSON file, or every ``*.json`` in a directory, sorted."""
    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("*.json"))
        if not files:
            raise TargetError(f"no *.json events in {os.fspath(path)!r}")
        return [(file.name, load_event(file)) for file in files]
    return [(root.name, load_event(root))]
