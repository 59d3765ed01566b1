"""The layer's package: one zip per architecture for every supported Python, bytecode for each
interpreter the build machine has, no test tooling, reproducible; and how it is published."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from safehandler import __version__, layer
from tests._layer import unpack

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION = f"safehandler {__version__}: AWS_LAMBDA_EXEC_WRAPPER=/opt/safehandler"


@pytest.fixture(scope="module")
def interpreters() -> list[str]:
    return layer.find_interpreters()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, interpreters: list[str]) -> Path:
    return layer.build_layer(tmp_path_factory.mktemp("built"), interpreters=interpreters)


def names(archive: Path) -> set[str]:
    with zipfile.ZipFile(archive) as zipped:
        return set(zipped.namelist())


def test_one_zip_per_architecture_for_every_python(built: Path) -> None:
    assert built.name == f"safehandler-{__version__}-x86_64.zip"
    assert "3.14" in layer.PYTHONS
    assert layer.PYTHONS == ("3.10", "3.11", "3.12", "3.13", "3.14")
    # psutil's wheel is abi3: one binary for every CPython 3
    [binary] = [n for n in names(built) if n.startswith("python/psutil/_psutil_linux")]
    assert binary.endswith(".abi3.so")


def test_bytecode_for_each_installed_python(built: Path, interpreters: list[str]) -> None:
    assert sys.executable in interpreters or any(
        Path(p).resolve() == Path(sys.executable).resolve() for p in interpreters
    )
    tags = sorted(
        subprocess.run(
            [python, "-c", "import sys; print(sys.implementation.cache_tag)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for python in interpreters
    )
    shipped = names(built)
    sources = sorted(
        n for n in shipped if n.startswith("python/safehandler/") and n.endswith(".py")
    )
    assert sources
    for source in sources:
        directory, module = source.rsplit("/", 1)
        for tag in tags:
            assert f"{directory}/__pycache__/{module[:-3]}.{tag}.pyc" in shipped, (source, tag)
    print(f"\nbytecode for {tags}")


def test_no_test_tooling_is_shipped(built: Path) -> None:
    package = {n.removeprefix("python/safehandler/") for n in names(built) if "safehandler/" in n}
    assert not [n for n in package if n.startswith("testing/")]
    for face in ("pytest_plugin", "strategies", "cli", "layer", "__main__"):
        assert not [n for n in package if n.split("/")[-1].split(".")[0] == face], face
    assert "safehandler" in names(built)  # the wrapper, at the root


def test_the_zip_is_reproducible(built: Path, tmp_path: Path, interpreters: list[str]) -> None:
    again = layer.build_layer(tmp_path, interpreters=interpreters)
    assert names(again) == names(built)
    with zipfile.ZipFile(built) as first, zipfile.ZipFile(again) as second:
        for info in first.infolist():
            other = second.getinfo(info.filename)
            assert (info.date_time, info.external_attr) == (other.date_time, other.external_attr)
            # by name: a ZipInfo carries its own archive's offsets and CRC
            assert first.read(info.filename) == second.read(info.filename), info.filename


def test_the_shipped_bytecode_is_what_python_loads(built: Path, tmp_path: Path) -> None:
    """unchecked-hash: on a read-only /opt the .pyc is used as it is, never recompiled nor
    compared with the source (edited here to tell which of the two was loaded)."""
    opt = tmp_path / "opt"
    unpack(built, opt)
    constants = opt / "python" / "safehandler" / "_constants.py"
    constants.write_text(constants.read_text().replace(f'"{__version__}"', '"edited"'))
    code = "import safehandler; print(safehandler.__version__)"
    env = {**os.environ, "PYTHONPATH": str(opt / "python"), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert proc.stdout.strip() == __version__


def test_without_bytecode_the_sources_alone(tmp_path: Path) -> None:
    plain = layer.build_layer(tmp_path, interpreters=[])
    assert not [n for n in names(plain) if n.endswith(".pyc")]


def test_publish_is_a_dry_run_by_default(built: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "safehandler",
            "layer",
            "publish",
            str(built),
            "--region",
            "eu-west-1",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# dry run")
    assert lines[1] == (
        f"aws lambda publish-layer-version --layer-name safehandler --description '{DESCRIPTION}' "
        f"--zip-file fileb://{built} --compatible-runtimes python3.10 python3.11 python3.12 "
        "python3.13 python3.14 --compatible-architectures x86_64 --license-info MIT "
        "--region eu-west-1"
    )


def test_publish_sends_what_the_cli_command_says(built: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    # AWS itself is not reachable from the test machine: botocore's stubber checks the call
    client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    arn = "arn:aws:lambda:eu-west-1:123456789012:layer:safehandler:7"
    with Stubber(client) as stub:
        stub.add_response(
            "publish_layer_version",
            {"LayerVersionArn": arn, "Version": 7},
            {
                "LayerName": "safehandler",
                "Description": DESCRIPTION,
                "Content": {"ZipFile": built.read_bytes()},
                "CompatibleRuntimes": [f"python{v}" for v in layer.PYTHONS],
                "CompatibleArchitectures": ["x86_64"],
                "LicenseInfo": "MIT",
            },
        )
        assert layer.publish_layer(built, "x86_64", client=client) == arn
        stub.assert_no_pending_responses()


def test_the_readme_tells_what_removing_the_layer_does() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "exit 127" in readme or "status 127" in readme
    for tool in ("SAM", "CDK", "Terraform"):
        assert tool in readme
    assert readme.count("AWS_LAMBDA_EXEC_WRAPPER: /opt/safehandler") >= 1  # SAM
