"""The built layer, unpacked as Lambda unpacks layers into /opt (shared by the layer tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

SITE_PACKAGES = Path("python", "lib", "python{}.{}".format(*sys.version_info[:2]), "site-packages")


def build_and_unpack(out: Path, *extra: str) -> Path:
    """``safehandler layer build`` into ``out``, the zip unpacked into ``out/opt``."""
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "layer", "build", "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    archive = Path(proc.stdout.strip().splitlines()[-1])
    opt = out / "opt"
    unpack(archive, opt)
    return opt


def unpack(archive: Path, opt: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(opt)
        for info in zipped.infolist():  # extractall drops modes: restore them
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(opt / info.filename, mode)


def merged_opt(target: Path, *layers: Path) -> Path:
    """``target`` holding every layer's files, later layers over earlier ones, as Lambda
    merges the function's layers into one /opt."""
    for layer in layers:
        shutil.copytree(layer, target, symlinks=True, dirs_exist_ok=True)
    return target


def dependencies_layer(root: Path) -> Path:
    """A dependencies layer in the documented layout: a module in
    python/lib/pythonX.Y/site-packages, and another reachable only through a .pth file there."""
    site = root / SITE_PACKAGES
    site.mkdir(parents=True)
    (site / "depslib.py").write_text("VALUE = 'from the dependencies layer'\n")
    extra = root / "vendored"
    extra.mkdir()
    (extra / "via_pth.py").write_text("VALUE = 'through a .pth file'\n")
    # relative to the site directory, so it holds wherever the layer is unpacked
    (site / "vendored.pth").write_text("../../../../vendored\n")
    return root
