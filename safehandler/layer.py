"""``safehandler layer build|publish``: the Lambda layer, one zip per architecture.

Layout (Lambda unpacks a layer into /opt):
    safehandler          the exec wrapper, mode 0755: AWS_LAMBDA_EXEC_WRAPPER=/opt/safehandler
    python/safehandler/  the production parts of this package (no test tooling, no CLI)
    python/psutil/ ...   its dependency, built for the target platform (pip --platform)

One zip serves every supported Python: safehandler is pure Python and psutil's wheel is
``abi3`` (one binary for every CPython 3). Bytecode is precompiled for each supported
interpreter the build machine has (``__pycache__/*.cpython-3XY.pyc`` side by side), in
``unchecked-hash`` mode: /opt is read-only and never changes, so Python neither compiles at
each cold start nor checks a timestamp that unzipping may not keep. The zip is reproducible:
sorted entries, fixed timestamps.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

__all__ = [
    "ARCHES",
    "PYTHONS",
    "build_layer",
    "find_interpreters",
    "publish_command",
    "publish_layer",
]

ARCHES = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
LAYER_NAME = "safehandler"
_PACKAGE = Path(__file__).resolve().parent
_WRAPPER = _PACKAGE / "exec_wrapper.sh"
_RUNTIME_DEPENDENCIES = ("psutil>=5.9",)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's own epoch: the same bytes from the same sources


def build_layer(
    out_dir: str | os.PathLike[str],
    *,
    arch: str = "x86_64",
    interpreters: Sequence[str] | None = None,
) -> Path:
    """Build ``safehandler-<version>-<arch>.zip`` in ``out_dir``; return it.

    ``interpreters``: the Pythons to precompile bytecode with (default: every supported one
    found on this machine, ``find_interpreters()``); an empty list ships sources only.
    """
    if arch not in ARCHES:
        raise ValueError(f"--arch {arch!r}: must be one of {', '.join(ARCHES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"safehandler-{__version__}-{arch}.zip"
    with tempfile.TemporaryDirectory(prefix="safehandler-layer-") as scratch:
        site = Path(scratch) / "python"
        _install_dependencies(site, ARCHES[arch], PYTHONS[0])
        # psutil's own test suite: never imported at runtime, most of what is left to ship
        shutil.rmtree(site / "psutil" / "tests", ignore_errors=True)
        shutil.copytree(_PACKAGE, site / "safehandler", ignore=_not_shipped)
        found = find_interpreters() if interpreters is None else interpreters
        print(f"bytecode for: {', '.join(found) or 'none'}", file=sys.stderr)
        for python in found:
            _compile(python, site)
        _zip(Path(scratch), target)
    return target


# Test tooling and the faces of the package (CLI, plugin, this builder) stay out of the layer:
# production imports none of them, and the import-graph test keeps it so.
_FACES = frozenset(
    {
        "testing",
        "cli.py",
        "pytest_plugin.py",
        "layer.py",
        "__main__.py",
        "strategies.py",
        "exec_wrapper.sh",  # at the layer's root instead
    }
)


def _not_shipped(directory: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    if Path(directory) == _PACKAGE:
        skipped |= _FACES & set(names)
    return skipped


def find_interpreters() -> list[str]:
    """One interpreter per supported Python on this machine: on PATH, else pyenv's."""
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for version in PYTHONS:
        candidates = [shutil.which(f"python{version}") or ""]
        pattern = os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")
        candidates += sorted(glob.glob(pattern), reverse=True)
        if sys.version_info[:2] == tuple(map(int, version.split("."))):
            candidates.insert(0, sys.executable)
        for candidate in candidates:
            if candidate and _is_python(candidate, version):
                found.append(candidate)
                break
    return found


def _is_python(candidate: str, version: str) -> bool:
    # a pyenv shim on PATH may name a version pyenv does not select: ask the interpreter
    try:
        proc = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=120,  # a pyenv shim on a loaded machine is slow, not absent
            check=False,
        )
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == version


def _compile(python: str, site: Path) -> None:
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            # one process, in sorted order: marshal's bytes depend on reference counts in the
            # compiling process (a FLAG_REF where an object is shared), so parallel workers,
            # each with its own history, made the same code into different bytes
            "--invalidation-mode",
            "unchecked-hash",
            # the path recorded in the code objects: where Lambda unpacks it, not this scratch
            # directory (the same bytes at every build; Python puts the real path at load)
            "-s",
            str(site.parent),
            "-p",
            "/opt",
            str(site),
        ],
        check=True,
        # a fixed hash seed: the order of frozenset constants, so the same bytes every build
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "", "PYTHONHASHSEED": "0"},
    )


def _install_dependencies(site: Path, platform: str, python: str) -> None:
    # Compiled wheels for Lambda's platform, whatever machine builds the layer; abi3 (psutil
    # ships one for every CPython 3), so the oldest supported Python picks one for all.
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
        wrapper = zipfile.ZipInfo("safehandler", date_time=_EPOCH)
        wrapper.external_attr = (0o100755 & 0xFFFF) << 16  # a regular file, rwxr-xr-x
        wrapper.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(wrapper, _WRAPPER.read_bytes())
        for path in sorted(root.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
                info.external_attr = (0o100644 & 0xFFFF) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())


def _publish_parameters(archive: Path, arch: str) -> dict[str, Any]:
    return {
        "LayerName": LAYER_NAME,
        "Description": f"safehandler {__version__}: AWS_LAMBDA_EXEC_WRAPPER=/opt/safehandler",
        "CompatibleRuntimes": [f"python{version}" for version in PYTHONS],
        "CompatibleArchitectures": [arch],
        "LicenseInfo": "MIT",
    }


def publish_command(archive: Path, arch: str, region: str | None = None) -> str:
    """The AWS CLI command that publishes ``archive`` as ``publish_layer`` would."""
    parameters = _publish_parameters(archive, arch)
    words = [
        "aws",
        "lambda",
        "publish-layer-version",
        "--layer-name",
        parameters["LayerName"],
        "--description",
        parameters["Description"],
        "--zip-file",
        f"fileb://{archive}",
        "--compatible-runtimes",
        *parameters["CompatibleRuntimes"],
        "--compatible-architectures",
        *parameters["CompatibleArchitectures"],
        "--license-info",
        parameters["LicenseInfo"],
    ]
    if region:
        words += ["--region", region]
    return shlex.join(words)


def publish_layer(
    archive: Path, arch: str, *, region: str | None = None, client: Any = None
) -> str:
    """Publish ``archive`` as a new version of the ``safehandler`` layer (boto3, the usual AWS
    credentials); the new version's ARN."""
    if client is None:
        import boto3  # type: ignore[import-untyped]  # only here: publishing needs it

        client = boto3.client("lambda", region_name=region)
    response = client.publish_layer_version(
        **_publish_parameters(archive, arch), Content={"ZipFile": archive.read_bytes()}
    )
    return str(response["LayerVersionArn"])
