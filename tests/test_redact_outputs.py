"""No secret in any output: a handler whose every detail carries a real secret, through every
sink safehandler writes to.

The handler (written into a directory named by a GitHub token, so that even its creation
sites carry a secret) leaks a file under a ``db_password=...`` directory, a thread named with a
password, a child process started with ``--password ...``, and changes secret-bearing env
vars, a ``sys.path`` entry and module globals (a DSN, a token). Each test drives one output
and checks that the secrets are absent and that their masks are there: the detail reached the
output and was hidden, not lost.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import resource
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safehandler
from safehandler import _health_state, _redact, cli
from safehandler._records import Finding, Site
from safehandler._redact import MASK, redact_finding
from safehandler._warn import warn
from safehandler.errors import error_for
from safehandler.pytest_plugin import _summary as pytest_summary
from safehandler.report import log_event, log_finding
from safehandler.testing import FakeLambdaContext, SoakReport, load_handler, soak, soak_policy
from safehandler.testing.html_report import render_html

from . import redact_corpus as corpus

SECRET = "Hunter2-Xq9"
TOKEN = "ghp_" + "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"
SECRETS = (SECRET, TOKEN[4:])
PROBES = "fds,threads,processes,globals"

pytest_plugins = ["tests.pg_fixtures"]

HANDLER = """
import os
import subprocess
import sys
import threading

SECRET = os.environ["SH_REDACT_SECRET"]
HERE = os.path.dirname(os.path.abspath(__file__))
KEPT = []
STOP = threading.Event()
LAST_DSN = None
API_TOKEN = None


def handler(event, context):
    global LAST_DSN, API_TOKEN
    n = len(KEPT)
    folder = os.path.join(HERE, f"db_password={SECRET}")
    os.makedirs(folder, exist_ok=True)
    KEPT.append(open(os.path.join(folder, "audit.log"), "a"))
    threading.Thread(target=STOP.wait, name=f"refresh password={SECRET}", daemon=True).start()
    # the shell waits on its own stdin (no child of its own): closing it ends the process
    argv = ["sh", "-c", "read line", "sh", "--password", SECRET]
    KEPT.append(subprocess.Popen(argv, stdin=subprocess.PIPE))
    os.environ["DB_PASSWORD"] = f"{SECRET}{n}"
    os.environ["DATABASE_URL"] = f"mysql://app:{SECRET}@db.example.com:3306/orders{n}"
    sys.path.append(f"/opt/api_key={SECRET}")
    LAST_DSN = f"postgresql://app:{SECRET}@pg.example.com:5432/orders{n}"
    API_TOKEN = f"{SECRET}{n}"
    return {"ok": True}


def release():
    STOP.set()
    for item in KEPT:
        if isinstance(item, subprocess.Popen):
            item.stdin.close()
            item.wait()
        else:
            item.close()
    KEPT.clear()
"""

# what the outputs show in the secrets' place: the names and hosts kept, the values masked
MASKED = {
    "fd": "db_password=***",
    "thread": "'refresh password=***'",
    "process": "--password ***",
    "env": "DB_PASSWORD changed: *** -> ***",
    "dsn": "mysql://app:***@db.example.com:3306/orders",
    "sys.path": "'/opt/api_key=***' added",
    "global": "API_TOKEN rebound: *** -> ***",
    "global dsn": "LAST_DSN rebound: 'postgresql://app:***@pg.example.com:5432/orders",
    "site": "ghp_***",
}


def assert_hidden(text: str, *expected: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    for piece in expected:
        assert piece in text, (piece, text[:2000])


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``path/to/file.py:handler`` of a fresh copy of the handler; all it leaked is released."""
    monkeypatch.setenv("SH_REDACT_SECRET", SECRET)
    monkeypatch.setenv("SAFEHANDLER_PROBES", PROBES)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"sh_redact_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / TOKEN
    folder.mkdir()
    (folder / f"{name}.py").write_text(HANDLER)
    yield f"{folder / name}.py:handler"
    module = sys.modules.pop(name, None)
    if module is not None:
        module.release()
    for variable in ("DB_PASSWORD", "DATABASE_URL"):
        os.environ.pop(variable, None)


@pytest.fixture
def handler(target: str) -> Callable[..., Any]:
    return load_handler(target)


def call(guarded: Callable[..., Any], times: int = 3) -> None:
    for _ in range(times):
        guarded({}, FakeLambdaContext())


# -- log lines ----------------------------------------------------------------------------


def test_stdlib_log_lines_and_their_structured_fields(
    handler: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safehandler")
    call(safehandler.guard(handler, mode="report", leak_after=1))
    lines = [r.getMessage() for r in caplog.records if r.name == "safehandler"]
    assert len(lines) >= 5
    everything = "\n".join(lines)
    assert_hidden(everything, *MASKED.values())
    fields = [json.loads(line)["safehandler"] for line in lines]
    sites = [f["site"] for f in fields if f.get("site")]
    assert sites
    assert all("ghp_***" in site for site in sites)


def test_powertools_log_lines(handler: Callable[..., Any]) -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service=f"sh-redact-{uuid.uuid4().hex[:8]}", stream=stream)
    call(safehandler.guard(handler, mode="report", leak_after=1, logger=logger))
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 5
    assert_hidden(stream.getvalue(), *MASKED.values())
    assert all(json.loads(line)["safehandler"]["event"] for line in lines)


def test_leak_error_messages(handler: Callable[..., Any]) -> None:
    strict = safehandler.guard(handler, mode="strict", leak_after=1)
    with pytest.raises(safehandler.LeakError) as info:
        call(strict)
    assert_hidden(str(info.value), "ghp_***")
    assert_hidden("\n".join(str(f) for f in info.value.findings), "ghp_***")


@pytest.fixture
def lambdas_fd_limit() -> Iterator[None]:
    """The soft RLIMIT_NOFILE at Lambda's 1,024 (or lower), so that a tiny fd_threshold is
    crossed whatever the machine's limit; put back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("lambdas_fd_limit")
def test_the_unhealthy_lines_top_sites(
    handler: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safehandler")
    call(safehandler.guard(handler, mode="report", fd_threshold=0.0001, recycle="off"), 1)
    [line] = [r.getMessage() for r in caplog.records if "safehandler.unhealthy" in r.getMessage()]
    top = json.loads(line)["safehandler"]["top_sites"]
    assert_hidden(json.dumps(top), MASKED["site"])
    assert any(MASKED["fd"] in site["what"] for site in top), top


def test_emf_metric_lines(handler: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    call(safehandler.guard(handler, mode="report", leak_after=1, metrics="emf"))
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    sites = [site for line in lines for site in json.loads(line).get("sites", [])]
    assert sites, lines
    assert_hidden("\n".join(lines), MASKED["site"])


def test_safehandlers_own_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="safehandler")
    warn("safehandler: closing %s failed: %r", f"mysql://app:{SECRET}@db/orders", f"{TOKEN}")
    assert_hidden(caplog.text, "mysql://app:***@db/orders", "ghp_***")


# -- DSNs and driver attributes ----------------------------------------------------------


def test_dsns_and_driver_attributes(pg_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    """The integrations describe a connection from the driver's own record (user, host, port,
    database), so the password is not even in the detail; this keeps it so."""
    import psycopg
    from sqlalchemy import create_engine, text

    # the server trusts the test's own role: the password is carried, never checked
    params = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, password=SECRET)
    user, host, port, db = (params[k] for k in ("user", "host", "port", "dbname"))
    url = f"postgresql+psycopg://{user}:{SECRET}@{host}:{port}/{db}"
    kept: list[Any] = []

    def handler(event: Any, context: Any) -> None:
        kept.append(psycopg.connect(dsn))
        engine = create_engine(url)
        kept.append(engine)
        with engine.connect() as conn:
            kept.append(conn.connection.dbapi_connection)
            conn.execute(text("SELECT 1"))

    caplog.set_level(logging.WARNING, logger="safehandler")
    try:
        settings = {"leak_after": 1, "probes": {"db"}, "db_cleanup": "off"}
        call(safehandler.guard(handler, mode="report", **settings), 2)
        assert kept[0].info.password == SECRET  # the driver holds it
        report = soak(handler, invocations=2, policy=soak_policy(**settings))
        with pytest.raises(safehandler.LeakedConnectionError) as info:
            call(safehandler.guard(handler, mode="strict", **settings), 2)
    finally:
        for item in kept:
            (item.dispose if hasattr(item, "dispose") else item.close)()
    outputs = [caplog.text, str(report), json.dumps(report.to_dict()), str(info.value)]
    for text_ in outputs:
        assert_hidden(text_, f"{user}@{host}:{port}/{db}")


# -- the soak and its reports -------------------------------------------------------------


def test_soak_text(handler: Callable[..., Any]) -> None:
    report = soak(handler, invocations=3, policy=soak_policy())
    assert_hidden(str(report), *MASKED.values())


@pytest.mark.parametrize("output", ["text", "--json", "--html"])
def test_the_soak_command(
    output: str, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.out"
    argv = ["soak", target, "-n", "3"]
    if output != "text":
        argv += [output, str(out), "--quiet"]
    assert cli.main(argv) == cli.EXIT_LEAK
    written = capsys.readouterr().out if output == "text" else out.read_text()
    assert_hidden(written)
    assert_hidden(html.unescape(written), *MASKED.values())
    if output == "--json":
        data = json.loads(written)
        assert_hidden(json.dumps(data["findings"]), MASKED["process"])
        assert MASKED["site"] in data["handler"]


def test_the_pytest_plugins_failure_text_and_summary(
    target: str, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish():  # the child processes and threads the handler left
            for name, module in list(sys.modules.items()):
                if name.startswith("sh_redact_"):
                    module.release()
        """
    )
    pytester.makepyfile(
        test_it=f"""
        import pytest

        @pytest.mark.soak(invocations=3, handler={target!r})
        def test_leaky():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "= safehandler soak =" in text  # the terminal summary is there...
    summary = text[text.index("= safehandler soak =") :]
    assert_hidden(summary, "ghp_***")  # ... and hides the handler's path
    assert_hidden(text, *MASKED.values())


def test_the_pytest_plugins_error_text(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        broken=f"""
        raise RuntimeError("cannot reach mysql://app:{SECRET}@db.example.com:3306/orders")
        """,
        test_it="""
        import pytest

        @pytest.mark.soak(invocations=3, handler="broken.py:handler")
        def test_broken():
            pass
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert_hidden(
        result.stdout.str(),
        "broken.py failed: RuntimeError: cannot reach mysql://app:***@db",
    )


# -- the health state ---------------------------------------------------------------------


def test_the_health_file_and_the_health_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "health.json"
    monkeypatch.setenv("SAFEHANDLER_HEALTH_FILE", str(base))
    _health_state.write_state(False, [f"fds 900/1024 (pool to mysql://app:{SECRET}@db)"], 7)
    state = Path(_health_state.process_path(str(base), os.getpid()))  # this process's own
    assert_hidden(state.read_text(), "mysql://app:***@db")
    # a file written by another process (another version) is redacted as it is printed
    data = json.loads(state.read_text())
    state.write_text(json.dumps(data | {"reasons": [f"token={TOKEN}"]}))
    assert cli.main(["health", "--file", str(base)]) == cli.EXIT_LEAK
    assert_hidden(capsys.readouterr().out, "UNHEALTHY since invocation 7", "token=***")
    missing = tmp_path / f"db_password={SECRET}" / "health.json"
    assert cli.main(["health", "--file", str(missing)]) == cli.EXIT_USAGE
    assert_hidden(
        capsys.readouterr().err, "unknown: no live process's health state", "db_password=***"
    )


# -- the user's own patterns (redact_patterns, SAFEHANDLER_REDACT) -------------------------


@pytest.fixture
def account_thread() -> Iterator[Callable[..., Any]]:
    """A handler that leaves a thread named with an account number: no built-in rule hides it."""
    stop = threading.Event()

    def handler(event: Any, context: Any) -> None:
        threading.Thread(target=stop.wait, name="sync acct-123456", daemon=True).start()

    yield handler
    stop.set()


@pytest.fixture
def no_registered_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    # a policy's patterns hold for the rest of the process: each test starts from none
    monkeypatch.setattr(_redact, "_registered", frozenset())


def _thread_lines(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if "named 'sync" in r.getMessage())


@pytest.mark.usefixtures("no_registered_patterns")
def test_redact_patterns_hide_the_users_own_secrets(
    account_thread: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safehandler")
    settings = {"mode": "report", "leak_after": 1, "probes": {"threads"}}
    call(safehandler.guard(account_thread, **settings), 1)
    assert "sync acct-123456" in _thread_lines(caplog)  # the twin: shown without the pattern
    caplog.clear()
    call(safehandler.guard(account_thread, redact_patterns={r"acct-\d{6}"}, **settings), 1)
    assert "sync ***" in _thread_lines(caplog)
    assert "acct-123456" not in caplog.text
    # once a policy has them, every output of the process hides them: a soak's report too
    report = soak(account_thread, invocations=2, policy=soak_policy(probes={"threads"}))
    assert "'sync ***'" in str(report)
    assert "acct-123456" not in json.dumps(report.to_dict())


@pytest.mark.usefixtures("no_registered_patterns")
def test_redact_patterns_from_the_environment(
    account_thread: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="safehandler")
    monkeypatch.setenv("SAFEHANDLER_REDACT", r"acct-\d{6},tenant=(\w+)")
    call(safehandler.guard(account_thread, mode="report", leak_after=1, probes={"threads"}), 1)
    assert "sync ***" in _thread_lines(caplog)
    assert "acct-123456" not in caplog.text


def test_a_bad_pattern_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(safehandler.ConfigError, match=r"^redact_patterns=frozenset\(\{'\('\}\)"):
        safehandler.guard(lambda event, context: None, redact_patterns={"("})
    with pytest.raises(safehandler.ConfigError, match=r"^SAFEHANDLER_REDACT='\[z-a\]': must be"):
        safehandler.Policy.from_env({"SAFEHANDLER_REDACT": "[z-a]"})


def test_a_bad_variable_is_one_error_line_that_hides_the_good_patterns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a literal secret among the patterns, beside one that is no regex
    monkeypatch.setenv("SAFEHANDLER_REDACT", f"{SECRET},(")
    with pytest.raises(safehandler.ConfigError) as info:
        safehandler.Policy.from_env()
    message = str(info.value)
    assert message.startswith("SAFEHANDLER_REDACT=")
    assert "\n" not in message  # one line
    caplog.set_level(logging.WARNING, logger="safehandler")
    warn("safehandler: %s", message)  # how an error leaves the library: through the boundary
    [line] = [r.getMessage() for r in caplog.records]
    assert (
        line == "safehandler: SAFEHANDLER_REDACT='***,(': must be " + message.split("must be ")[1]
    )


# -- the fuzz side: random secrets in random shapes and positions, through every renderer --

_WORDY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SECRET = st.text(_WORDY + "!#$%*+-.:=?@^_|~", min_size=10, max_size=30).filter(
    # a digit and a capital: nothing the outputs say of themselves ("called_from") is a secret
    lambda s: (
        sum(c in _WORDY for c in s) >= 6
        and any(c.isdigit() for c in s)
        and any(c.isupper() for c in s)
    )
)
SHAPES = [
    "db_password={s}",
    "PGPASSWORD={s}",
    "mysql://app:{s}@db.example.com:3306/orders",
    "--password {s}",
    "mysql -p{s}",
    "Authorization: Bearer {s}",
    '{{"client_secret": "{s}"}}',
    "{{'api_key': '{s}'}}",
    "Server=db;UID=app;PWD={s};Database=orders",
    "https://api.example.com/v1?access_token={s}&page=2",
]
_FILLER = st.lists(st.sampled_from(["to", "db.example.com:3306", "open", "named", "(daemon)"]))


def _strings(tree: Any) -> str:
    """Every string of a JSON document, decoded, one per line."""
    if isinstance(tree, str):
        return tree
    if isinstance(tree, dict):
        return "\n".join(_strings(k) + "\n" + _strings(v) for k, v in tree.items())
    if isinstance(tree, list):
        return "\n".join(map(_strings, tree))
    return str(tree)


def _log_lines(log: Callable[[Any], None], logger: Any, stream: io.StringIO) -> str:
    log(logger)
    return "\n".join(_strings(json.loads(line)) for line in stream.getvalue().splitlines())


def _renders(finding: Finding) -> dict[str, str]:
    """Every output a finding reaches, as its reader reads it (JSON decoded, HTML unescaped)."""
    from aws_lambda_powertools import Logger

    out: dict[str, str] = {}
    redacted = redact_finding(finding)  # as the engine hands it out
    out["LeakError"] = str(error_for([redacted]))

    def log(logger: Any) -> None:
        log_finding(logger, redacted)
        log_event(logger, "safehandler.test", f"raw {finding.detail}", {"what": finding.detail})

    stream = io.StringIO()
    stdlib = logging.getLogger(f"sh_redact_fuzz_{id(stream)}")
    stdlib.addHandler(logging.StreamHandler(stream))
    stdlib.propagate = False
    try:
        out["stdlib log"] = _log_lines(log, stdlib, stream)
    finally:
        stdlib.handlers.clear()
    stream = io.StringIO()
    powertools = Logger(service=f"sh-redact-{uuid.uuid4().hex[:8]}", stream=stream)
    out["Powertools log"] = _log_lines(log, powertools, stream)
    report = SoakReport("app:handler", 3, 0, [finding], 0.1)
    out["soak text"] = str(report)
    out["--json"] = _strings(json.loads(json.dumps(report.to_dict())))
    out["--html"] = html.unescape(render_html(report))
    out["pytest summary"] = _strings(json.loads(json.dumps(pytest_summary(report))))
    return out


def _finding(detail: str, filename: str = "/var/task/app.py") -> Finding:
    site = Site(filename, 12, "handler")
    return Finding("fd", 3, site, 1, detail, noun="file", extra={"what": detail})


@pytest.mark.parametrize(
    ("text", "secret", "kept"), corpus.SECRETS, ids=[s[0][:40] for s in corpus.SECRETS]
)
def test_every_secret_of_the_corpus_through_every_output(
    text: str, secret: str, kept: list[str]
) -> None:
    for output, shown in _renders(_finding(text)).items():
        assert secret not in shown, output
        for piece in kept:
            assert piece in shown, (output, piece)


@pytest.mark.parametrize("text", corpus.LOOK_ALIKES)
def test_every_look_alike_through_every_output(text: str) -> None:
    for output, shown in _renders(_finding(text)).items():
        assert text in shown, output


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    secret=_SECRET,
    before=_FILLER,
    after=_FILLER,
    in_site=st.booleans(),
)
def test_random_secrets_never_reach_an_output(
    shape: str, secret: str, before: list[str], after: list[str], in_site: bool
) -> None:
    placed = shape.format(s=secret)
    detail = " ".join([*before, placed, *after])
    site = Site(f"/var/task/{placed}/app.py" if in_site else "/var/task/app.py", 12, "handler")
    for output, text in _renders(_finding(detail, site.filename)).items():
        assert secret not in text, (output, text)
        assert MASK in text, output
