"""``safehandler layer build``: a Lambda layer zip with the exec wrapper at its root.

Layout (Lambda unpacks a layer into /opt):
    safehandler          the exec wrapper, mode 0755: AWS_LAMBDA_EXEC_WRAPPER=/opt/safehandler
    python/safehandler/  this package (pure Python)
    python/psutil/ ...   its dependencies, built for the target platform (pip --platform)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from . import __version__

__all__ = ["ARCHES", "PYTHONS", "build_layer"]

ARCHES = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
_PACKAGE = Path(__file__).resolve().parent
_WRAPPER = _PACKAGE / "exec_wrapper.sh"
_RUNTIME_DEPENDENCIES = ("psutil>=5.9",)


def build_layer(
    out_dir: str | os.PathLike[str], *, arch: str = "x86_64", python: str = "3.12"
) -> Path:
    """Build ``safehandler-<version>-python<python>-<arch>.zip`` in ``out_dir``; return it."""
    if arch not in ARCHES:
        raise ValueError(f"--arch {arch!r}: must be one of {', '.join(ARCHES)}")
    if python not in PYTHONS:
        raise ValueError(f"--python {python!r}: must be one of {', '.join(PYTHONS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"safehandler-{__version__}-python{python}-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="safehandler-layer-") as scratch:
        site = Path(scratch) / "python"
        _install_dependencies(site, ARCHES[arch], python)
        shutil.copytree(_PACKAGE, site / "safehandler", ignore=_not_shipped)
        _zip(Path(scratch), target)
    return target


# Test tooling and the faces of the package (CLI, plugin, this builder) stay out of the layer:
# production imports none of them, and the import-graph test keeps it so.
_FACES = frozenset(
    {"testing", "cli.py", "pytest_plugin.py", "layer.py", "__main__.py", "strategies.py"}
)


def _not_shipped(directory: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    if Path(directory) == _PACKAGE:
        skipped |= _FACES & set(names)
    return skipped


def _install_dependencies(site: Path, platform: str, python: str) -> None:
    # Compiled wheels for Lambda's platform, whatever machine builds the layer.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(site),
            "--platform",
            platform,
            "--implementation",
            "cp",
            "--python-version",
            python,
            "--only-binary=:all:",
            "--no-compile",
            *_RUNTIME_DEPENDENCIES,
        ],
        check=True,
    )


def _zip(root: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        wrapper = zipfile.ZipInfo("safehandler", date_time=time.localtime()[:6])
        wrapper.external_attr = (0o100755 & 0xFFFF) << 16  # a regular file, rwxr-xr-x
        wrapper.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(wrapper, _WRAPPER.read_bytes())
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
