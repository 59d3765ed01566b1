"""An emulation of Lambda's managed Python runtime: ``/var/runtime`` and its ``bootstrap.py``.

On Lambda the runtime command is ``python3.X /var/runtime/bootstrap.py`` (behind
``AWS_LAMBDA_EXEC_WRAPPER`` when set), with awslambdaric in ``/var/runtime``. That bootstrap
builds ``sys.path``: the task root as a site directory (its ``.pth`` files processed) and, only
when ``PYTHONPATH`` is not set, ``/opt/python/lib/python3.X/site-packages`` and
``/opt/python`` as site directories too. So an exec wrapper that exports ``PYTHONPATH`` hides
every dependencies layer in the documented layout; this emulation reproduces that.

The interpreter runs with ``-S``: the test environment's own site-packages (where safehandler
is installed for development) are not on the path, as they are not on Lambda; awslambdaric
and its dependencies are linked into the emulated ``/var/runtime``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

__all__ = ["managed_runtime_command"]

# awslambdaric and what it imports: what /var/runtime holds on Lambda
_RUNTIME_MODULES = ("awslambdaric", "simplejson", "snapshot_restore_py", "runtime_client")

_BOOTSTRAP = '''\
"""Emulated /var/runtime/bootstrap.py of Lambda's Python runtime ({opt} stands for /opt)."""
import os
import site
import sys

OPT = {opt!r}


def add_default_site_directories():
    site.addsitedir(os.environ["LAMBDA_TASK_ROOT"])
    if "PYTHONPATH" not in os.environ:
        version = "%d.%d" % sys.version_info[:2]
        site.addsitedir(os.path.join(OPT, "python", "lib", "python" + version, "site-packages"))
        site.addsitedir(os.path.join(OPT, "python"))


def main():
    add_default_site_directories()
    from awslambdaric import __main__ as awslambdaricmain

    awslambdaricmain.main([os.environ["LAMBDA_TASK_ROOT"], os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
'''


def managed_runtime_command(
    opt: str | os.PathLike[str], python: str | None = None
) -> tuple[list[str], Path]:
    """Lay out an emulated ``/var/runtime`` for ``opt``: the runtime command Lambda runs, and
    the directory (the caller removes it)."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="safehandler-var-runtime-"))
    for entry in _runtime_entries():
        (runtime_dir / entry.name).symlink_to(entry)
    bootstrap = runtime_dir / "bootstrap.py"
    bootstrap.write_text(_BOOTSTRAP.format(opt=os.fspath(os.path.abspath(opt))))
    return [python or sys.executable, "-S", os.fspath(bootstrap)], runtime_dir


def _runtime_entries() -> list[Path]:
    # found, not imported: only the runtime entry and the recycle import awslambdaric
    import importlib.util

    spec = importlib.util.find_spec("awslambdaric")
    if spec is None or spec.origin is None:
        raise RuntimeError("awslambdaric is not installed: no runtime to emulate")
    site_dir = Path(spec.origin).resolve().parent.parent
    return [
        entry
        for entry in sorted(site_dir.iterdir())
        if entry.name.split(".")[0] in _RUNTIME_MODULES and not entry.name.endswith("-info")
    ]
