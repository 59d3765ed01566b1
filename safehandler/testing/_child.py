"""The child process of an isolated soak: ``python -m safehandler.testing._child SPEC``.

Reads the spec ``soak_isolated`` pickled (a file of the parent's own making, in a private
temporary directory), finds the handler the way the parent named it, soaks it and writes the
report as JSON. A bad target is one line on stderr and exit 2.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TargetError

__all__ = ["main"]


def main(argv: list[str]) -> int:
    spec = pickle.loads(Path(argv[0]).read_bytes())  # noqa: S301 - our own parent's file
    sys.path[:] = spec["sys_path"]
    os.chdir(spec["cwd"])
    # the findings go to the report: past EMFILE the probes say so in the log, as expected
    logging.disable(logging.CRITICAL)
    from ._output import AtomicOutput
    from ._soak import soak, soak_policy

    try:
        out = AtomicOutput(spec["out"])  # reserved before the handler can use up the fds
        handler = _handler(spec["handler"])
        report = soak(
            handler,
            events=spec["events"],
            invocations=spec["invocations"],
            policy=soak_policy(**spec["settings"]),
            name=spec["name"],
            timeout=spec["timeout"],
            fail_fast=spec["fail_fast"],
            max_seconds=spec["max_seconds"],
            release=False,  # the process ends: everything goes with it
        )
    except (TargetError, ConfigError) as exc:
        from .._redact import redact_text

        print(redact_text(f"safehandler: error: {exc}"), file=sys.stderr)
        return 2
    out.commit(json.dumps(report.to_dict()))
    return 0


def _handler(reference: tuple[Any, ...]) -> Any:
    from ._targets import import_file, load_handler

    kind = reference[0]
    if kind == "target":
        return load_handler(reference[1])
    if kind == "pickled":
        return pickle.loads(reference[1])  # noqa: S301 - our own parent's pickle
    _, module_name, path, file = reference
    try:
        module: Any = importlib.import_module(module_name)
    except ImportError:
        if not file:
            raise TargetError(f"cannot import module {module_name!r} in the child") from None
        module = import_file(Path(file))
    target = module
    for part in path.split("."):
        target = getattr(target, part)
    return target


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
