"""``safehandler soak`` on the examples, as a user runs it: a subprocess from a project
directory (a scratch copy of the examples in ``tmp_path``, so nothing lands in the repo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import EVENT, ROOT, env, run, workdir
from ._lines import line_of


@pytest.mark.parametrize(
    ("example", "kind", "marker_line"),
    [
        ("leaky_sqlite", "fd", "conn = sqlite3.connect(DATABASE)"),
        ("leaky_file", "fd", 'log = open(AUDIT_LOG, "a", encoding="utf-8")'),
        ("leaky_socket", "socket", "client = socket.create_connection(ADDRESS)"),
        ("leaky_thread", "thread", "threading.Thread(target=_refresh_forever"),
    ],
)
def test_each_leaky_example_is_found_where_it_first_grows(
    example: str, kind: str, marker_line: str, tmp_path: Path
) -> None:
    source = ROOT / "examples" / f"{example}.py"
    lines = source.read_text().splitlines()
    [line] = [n for n, text in enumerate(lines, 1) if marker_line in text]
    code, stdout, stderr, report = run(
        f"examples/{example}.py:handler", "-n", "60", "--event", EVENT, tmp_path=tmp_path
    )
    assert code == 1, stderr
    # none of safehandler's own faults on the way (its audit hook once imported sysconfig
    # from inside an audit event, and printed the traceback)
    assert "Traceback" not in stderr, stderr
    assert report is not None
    assert (report["verdict"], report["invocations"], report["errors"]) == ("leak", 60, 0)
    [finding] = [f for f in report["findings"] if f["kind"] not in ("memory", "global")]
    assert finding["kind"] == kind
    assert finding["site"] == f"examples/{example}.py:{line}"
    assert finding["count"] == 60
    assert finding["first_invocation"] == 1
    # found when it first grows: the second retention, or the first for a thread
    assert finding["invocation"] == (1 if kind == "thread" else 2)
    assert f"[{kind}] 60 " in stdout
    assert f"examples/{example}.py:{line} in handler" in stdout


@pytest.mark.parametrize("example", ["clean_reuse", "fixed_sqlite"])
def test_clean_examples_pass_1500_invocations(example: str, tmp_path: Path) -> None:
    code, stdout, stderr, report = run(
        f"examples/{example}.py:handler", "--event", EVENT, tmp_path=tmp_path
    )
    assert code == 0, stdout + stderr
    assert report == report | {"verdict": "clean", "invocations": 1500, "errors": 0, "findings": []}
    assert "verdict: clean" in stdout


def test_json_report_keeps_its_documented_shape(tmp_path: Path) -> None:
    _, _, _, report = run("examples/leaky_file.py:handler", "-n", "5", tmp_path=tmp_path)
    assert report is not None
    assert {"handler", "invocations", "errors", "verdict", "findings"} <= report.keys()
    for finding in report["findings"]:
        assert {"kind", "site", "count", "first_invocation", "detail"} <= finding.keys()
        assert isinstance(finding["detail"], str)


def test_module_targets_work_like_lambda_handler_strings(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "soak", "app:handler", "-n", "10"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path, PYTHONPATH=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "10 invocations" in proc.stdout


@pytest.mark.parametrize(
    "target", ["app:handler", "app.handler", "sub/orders.py:handler", "sub/orders.handler"]
)
def test_lambdas_own_handler_forms_work_beside_the_colon_forms(target: str, tmp_path: Path) -> None:
    source = "def handler(event, context):\n    return {'statusCode': 200}\n"
    (tmp_path / "app.py").write_text(source)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "orders.py").write_text(source)
    code, _, stderr, report = run(target, "-n", "10", tmp_path=tmp_path)
    assert code == 0, stderr
    assert report is not None
    assert (report["handler"], report["invocations"]) == (target, 10)


def test_the_installed_command_imports_from_the_project_directory(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("safehandler")
    assert command.exists(), "the console script is installed with the package"
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
    proc = subprocess.run(
        [str(command), "soak", "app.handler", "-n", "10"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path),  # no PYTHONPATH: the cwd is the task root, as on Lambda
    )
    assert proc.returncode == 0, proc.stderr
    assert "10 invocations" in proc.stdout


def test_a_handler_that_always_raises_is_failing_not_clean(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(
        "def handler(event, context):\n    raise KeyError('missing')\n"
    )
    code, stdout, _, report = run(f"{tmp_path}/flaky.py:handler", "-n", "7", tmp_path=tmp_path)
    assert code == 1
    assert report is not None
    assert (report["verdict"], report["errors"], report["failed"]) == ("failing", 7, 7)
    assert report["error_types"] == {"KeyError": 7}
    assert report["failures"]["first"] == {
        "invocation": 1,
        "error": "KeyError",
        "message": "'missing'",
    }
    assert report["failures"]["evolution"] == "every invocation failed"
    assert "7 raised (7 KeyError)" in stdout
    assert "verdict: FAILING, 7 of 7 invocations failed" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["examples/nope.py:handler"], "no such file: examples/nope.py"),
        (["examples/leaky_file.py:nope"], "has no attribute 'nope'"),
        (["no_such_module_xyz:handler"], "cannot import module 'no_such_module_xyz'"),
        (["examples/leaky_file.py"], "(name the function: examples/leaky_file.py:handler)"),
        (["leaky_file"], "expected module:function, path/to/file.py:function, or Lambda's"),
        (["examples/leaky_file.nope"], "has no attribute 'nope'"),
        (["examples/leaky_file.py:handler", "--event", "missing.json"], "cannot read event"),
        (["examples/leaky_file.py:handler", "-n", "0"], "must be a whole number of at least 1"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "soak", *args],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path),
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_setting_in_the_environment_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "soak", "examples/clean_reuse.py:handler"],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path, SAFEHANDLER_LEAK_AFTER="0"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "safehandler: error: SAFEHANDLER_LEAK_AFTER='0': must be an integer in [1, 1000000]"
    )


def test_settings_command_prints_every_variable(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "safehandler", "settings"],
        cwd=tmp_path,
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    from safehandler.policy import SETTINGS

    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in proc.stdout


def test_guarded_example_logs_one_json_line(tmp_path: Path) -> None:
    script = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='%(message)s')\n"
        "sys.path.insert(0, 'examples')\n"
        "import guarded_handler\n"
        "from safehandler.testing import FakeLambdaContext\n"
        "for _ in range(40): guarded_handler.handler({}, FakeLambdaContext())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    payloads = [json.loads(line)["safehandler"] for line in proc.stdout.splitlines()]
    # one line per finding: the fd, and the module-level list that keeps it
    # the fd as its count doubles from 8, and the module-level list that keeps them at 32
    assert [(p["kind"], p["invocation"]) for p in payloads] == [
        ("fd", 8),
        ("fd", 16),
        ("fd", 32),
        ("global", 32),
    ]
    assert payloads[-1]["what"] == "guarded_handler.CONNECTIONS grew: 31 -> 32 items"
    payload = payloads[0]
    expected = (
        line_of(
            "the leak safehandler reports at invocation 8",
            ROOT / "examples" / "guarded_handler.py",
        )
        - 1
    )
    assert payload["site"] == f"examples/guarded_handler.py:{expected}"
    # what a pool would keep is reported in production once it grew for 8 invocations
    assert (payload["kind"], payload["count"], payload["invocation"]) == ("fd", 8, 8)


def test_powertools_example_stacks_and_stays_clean(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "sys.path.insert(0, 'examples')\n"
        "import powertools_handler\n"
        "from safehandler.guard import engine_of\n"
        "from safehandler.testing import FakeLambdaContext, load_event\n"
        "event = load_event('examples/events/api_gateway.json')\n"
        "for _ in range(20): assert powertools_handler.handler(event, FakeLambdaContext())"
        " == {'statusCode': 200}\n"
        "print(len(engine_of(powertools_handler.handler).findings))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    *logs, findings = proc.stdout.splitlines()
    assert findings == "0"
    records = [json.loads(line) for line in logs]
    assert len(records) == 20
    assert {r["message"] for r in records} == {"order processed"}
    assert {r["function_name"] for r in records} == {"safehandler-soak"}  # context injected
    assert {r["path"] for r in records} == {"/orders"}


def test_isolated_soak_reports_emfile_where_the_limit_was_hit(tmp_path: Path) -> None:
    code, stdout, stderr, report = run(
        "examples/leaky_file.py:handler",
        "--isolate",
        "--fd-limit",
        "256",
        "-n",
        "400",
        tmp_path=tmp_path,
    )
    assert code == 1, stderr
    assert report is not None
    first_fds = report["stats"][0][1]  # open fds after invocation 1
    # invocation k holds first_fds + k - 1 fds; the one that needs fd number 256 fails
    expected = 256 - first_fds + 2
    assert report["fd_exhausted_at"] == expected
    assert report["fd_limit"] == 256
    assert report["error_types"] == {"OSError[EMFILE]": 400 - expected + 1}
    assert f"EMFILE at invocation {expected}:" in stdout
    [finding] = [f for f in report["findings"] if f["kind"] == "fd"]
    assert (finding["site"], finding["invocation"]) == ("examples/leaky_file.py:11", 2)


def test_events_directory_seed_and_html(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    for n in range(3):
        (events / f"e{n}.json").write_text(json.dumps({"path": f"/p{n}"}))
    html = tmp_path / "report.html"
    code, _, stderr, report = run(
        "examples/clean_reuse.py:handler",
        "--events",
        str(events),
        "--seed",
        "7",
        "-n",
        "30",
        "--html",
        str(html),
        tmp_path=tmp_path,
    )
    assert code == 0, stderr
    assert report is not None
    assert report["verdict"] == "clean"
    page = html.read_text()
    assert page.lower().startswith("<!doctype html>")
    assert "examples/clean_reuse.py:handler" in page


def test_empty_events_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    code, _, stderr, _ = run(
        "examples/clean_reuse.py:handler", "--events", str(tmp_path / "none"), tmp_path=tmp_path
    )
    assert code == 2
    assert "no *.json events in" in stderr


def test_run_locally_example_goes_through_awslambdaric(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "examples/run_locally.py"],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        env=env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("True [{'statusCode': 200, 'body': ")


def test_restore_isolation_puts_global_state_back(tmp_path: Path) -> None:
    scratch = workdir(tmp_path)
    out = tmp_path / "r.json"
    argv = [sys.executable, "-m", "safehandler", "soak", "examples/leaky_globals.py:handler"]
    argv += ["-n", "20", "--json", str(out)]
    plain = subprocess.run(
        argv, cwd=scratch, capture_output=True, text=True, env=env(tmp_path), timeout=60
    )
    assert plain.returncode == 1, plain.stderr
    before = json.loads(out.read_text())
    restored = subprocess.run(
        argv,
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path, SAFEHANDLER_ISOLATION="restore"),
    )
    after = json.loads(out.read_text())
    assert restored.returncode == 1
    nouns = sorted(f["noun"] for f in before["findings"])
    assert nouns == ["file", "logging handler", "module global", "stdlib attribute"]
    assert before["stats"][-1][1] - before["stats"][0][1] == 19  # one FileHandler fd a call
    assert after["stats"][-1][1] == after["stats"][0][1]  # handlers removed and closed
    seen = [f["what"] for f in after["findings"] if f["noun"] == "module global"]
    # put back every time: never more than one item
    assert seen == ["leaky_globals.SEEN grew: 1 -> 2 items since invocation 1"]
