"""Policy: defaults, SAFEHANDLER_* variables, precedence and the errors that name the culprit."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import safehandler
from safehandler import ConfigError, _constants
from safehandler.guard import engine_of
from safehandler.policy import PROBE_NAMES, SETTINGS, Policy, Setting, settings_table

from . import strategies

ENV_NAMES = [setting.env for setting in SETTINGS]
FIELDS = [setting.field for setting in SETTINGS]
BY_FIELD = {setting.field: setting for setting in SETTINGS}


def handler(event: Any, context: Any) -> Any:
    return event


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the shell exported, these tests start from no SAFEHANDLER_* variable."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


# -- defaults and the settings table ------------------------------------------------------


def test_defaults() -> None:
    policy = Policy()
    assert policy.as_dict() == {
        "mode": "report",
        "leak_after": 2,
        "leak_span": None,  # auto: 32, or 1 when strict or soaking
        "warmup": 0,
        "thread_grace_ms": 10.0,
        "fd_threshold": 0.5,
        "memory_threshold": 0.8,
        "memory_limit_mb": None,
        "memory_window": 100,
        "memory_leak_kb": 4.0,
        "db_cleanup": "leaks",
        "recycle": "auto",
        "isolation": "report",
        "shared_state_every": None,  # auto: 8, or 1 when strict, soaking or restoring
        "allow_globals": frozenset(),
        "allow_threads": frozenset(),
        "probes": frozenset(PROBE_NAMES),  # every probe
        "metrics": "off",  # the fleet view is opt-in
        "metrics_namespace": None,  # auto: POWERTOOLS_METRICS_NAMESPACE, else safehandler
        "redact_patterns": frozenset(),  # the built-in corpus only
    }
    assert (policy.strict, policy.enabled) == (False, True)
    assert Policy.from_env(environ={}) == policy


def test_mode_properties() -> None:
    assert (Policy(mode="strict").strict, Policy(mode="strict").enabled) == (True, True)
    assert (Policy(mode="off").strict, Policy(mode="off").enabled) == (False, False)


def test_policy_is_frozen_and_keyword_only() -> None:
    policy = Policy()
    with pytest.raises(AttributeError, match=r"immutable: use replace\(mode=...\)"):
        policy.mode = "strict"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del policy.mode  # type: ignore[misc]
    with pytest.raises(TypeError):
        Policy("strict")  # type: ignore[misc]


def test_policies_compare_hash_and_print_by_their_settings() -> None:
    assert Policy(mode="strict") == Policy.from_env({}, mode="strict")
    assert Policy(mode="strict") != Policy()
    assert len({Policy(), Policy(), Policy(warmup=1)}) == 2
    assert repr(Policy()).startswith("Policy(mode='report', leak_after=2, leak_span=None, ")
    assert Policy().replace(warmup=3).as_dict() == {**Policy().as_dict(), "warmup": 3}


def test_policies_copy_and_pickle_whole() -> None:
    policy = Policy(mode="strict", allow_globals=["app.CACHE"], memory_limit_mb=512)
    for twin in (pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy), copy.copy(policy)):
        assert twin == policy
        assert twin.allow_globals == frozenset({"app.CACHE"})


def test_every_policy_field_has_exactly_one_setting() -> None:
    assert list(Policy().as_dict()) == FIELDS
    assert len(set(ENV_NAMES)) == len(ENV_NAMES)
    assert all(name.startswith("SAFEHANDLER_") for name in ENV_NAMES)


def test_every_safehandler_variable_of_the_constants_module_is_a_setting() -> None:
    declared = {
        value
        for name, value in vars(_constants).items()
        if name.isupper() and isinstance(value, str) and value.startswith(_constants.PREFIX)
    } - {_constants.PREFIX}
    assert declared - set(_constants.NOT_POLICY) == set(ENV_NAMES)


def test_strategies_cover_every_setting() -> None:
    assert set(strategies.VALID) == set(FIELDS)
    assert set(strategies.INVALID_ARGUMENTS) == set(FIELDS)
    assert set(strategies.INVALID_ENV) == set(FIELDS)


def test_settings_table_has_a_row_for_every_variable() -> None:
    table = settings_table()
    lines = table.splitlines()
    assert lines[0] == "| setting | variable | default | accepted | meaning |"
    rows = lines[2:]
    assert len(rows) == len(SETTINGS)
    for setting, row in zip(SETTINGS, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[:2] == [f"`{setting.field}`", f"`{setting.env}`"]
        assert cells[3] == setting.accepted
        assert cells[4] == setting.meaning


def test_settings_table_shows_defaults_as_they_are_written_in_the_environment() -> None:
    rows = {line.split(" | ")[1].strip("`"): line for line in settings_table().splitlines()[2:]}
    assert "| `report` |" in rows["SAFEHANDLER_MODE"]
    assert "| `0.5` |" in rows["SAFEHANDLER_FD_THRESHOLD"]
    assert "| `auto` |" in rows["SAFEHANDLER_MEMORY_LIMIT_MB"]
    assert f"| `{','.join(PROBE_NAMES)}` |" in rows["SAFEHANDLER_PROBES"]
    # each default, as printed, is read back from the environment as the default itself
    for setting in SETTINGS:
        printed = rows[setting.env].split(" | ")[2].strip("`")
        policy = Policy.from_env(environ={setting.env: printed})
        assert getattr(policy, setting.field) == getattr(Policy(), setting.field)


# -- the environment ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("SAFEHANDLER_MODE", "strict", "mode", "strict"),
        ("SAFEHANDLER_MODE", " off\n", "mode", "off"),
        ("SAFEHANDLER_LEAK_AFTER", "1", "leak_after", 1),
        ("SAFEHANDLER_LEAK_AFTER", " 7 ", "leak_after", 7),
        ("SAFEHANDLER_THREAD_GRACE_MS", "0", "thread_grace_ms", 0.0),
        ("SAFEHANDLER_THREAD_GRACE_MS", "250.5", "thread_grace_ms", 250.5),
        ("SAFEHANDLER_FD_THRESHOLD", "1", "fd_threshold", 1.0),
        ("SAFEHANDLER_FD_THRESHOLD", "0.25", "fd_threshold", 0.25),
        ("SAFEHANDLER_MEMORY_THRESHOLD", "0.9", "memory_threshold", 0.9),
        ("SAFEHANDLER_MEMORY_LIMIT_MB", "512", "memory_limit_mb", 512),
        ("SAFEHANDLER_MEMORY_LIMIT_MB", "auto", "memory_limit_mb", None),
        ("SAFEHANDLER_MEMORY_LIMIT_MB", "AUTO", "memory_limit_mb", None),
        ("SAFEHANDLER_MEMORY_LIMIT_MB", "", "memory_limit_mb", None),
        ("SAFEHANDLER_MEMORY_WINDOW", "2", "memory_window", 2),
        ("SAFEHANDLER_MEMORY_LEAK_KB", "0.5", "memory_leak_kb", 0.5),
        ("SAFEHANDLER_DB_CLEANUP", "all", "db_cleanup", "all"),
        ("SAFEHANDLER_DB_CLEANUP", " off ", "db_cleanup", "off"),
        ("SAFEHANDLER_PROBES", "fds", "probes", frozenset({"fds"})),
        ("SAFEHANDLER_PROBES", " threads , fds ,", "probes", frozenset({"fds", "threads"})),
        (
            "SAFEHANDLER_REDACT",
            r"acme-\d{4,8}, tok_\w+",
            "redact_patterns",
            frozenset({r"acme-\d{4,8}", r"tok_\w+"}),
        ),
        ("SAFEHANDLER_REDACT", "a[,]b\nc\\,d\n", "redact_patterns", frozenset({"a[,]b", "c\\,d"})),
    ],
)
def test_each_variable_sets_its_field(variable: str, raw: str, field: str, expected: Any) -> None:
    policy = Policy.from_env(environ={variable: raw})
    assert getattr(policy, field) == expected
    assert type(getattr(policy, field)) is type(expected)
    others = {name: getattr(Policy(), name) for name in FIELDS if name != field}
    assert {name: getattr(policy, name) for name in others} == others


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHANDLER_LEAK_AFTER", "9")
    monkeypatch.setenv("SAFEHANDLER_PROBES", "threads")
    policy = Policy.from_env()
    assert (policy.leak_after, policy.probes) == (9, frozenset({"threads"}))


def test_unrelated_variables_are_ignored() -> None:
    assert Policy.from_env(environ={"PATH": "/bin", "SAFEHANDLER": "x", "HOME": ""}) == Policy()


@given(strategies.policies())
def test_every_policy_round_trips_through_the_environment(policy: Policy) -> None:
    environ = policy.to_env()
    assert sorted(environ) == sorted(ENV_NAMES)
    assert all(isinstance(value, str) for value in environ.values())
    assert Policy.from_env(environ=environ) == policy


@given(strategies.policy_kwargs())
def test_every_valid_keyword_set_builds_a_policy_with_those_values(kwargs: dict[str, Any]) -> None:
    policy = Policy(**kwargs)
    for name in FIELDS:
        assert getattr(policy, name) == kwargs.get(name, getattr(Policy(), name))
    assert Policy.from_env(environ={}, **kwargs) == policy
    assert Policy().replace(**kwargs) == policy


@pytest.mark.parametrize("collection", [list, tuple, set, frozenset])
def test_probes_accept_any_collection_of_names(collection: type) -> None:
    policy = Policy(probes=collection(["fds", "threads"]))
    assert policy.probes == frozenset({"fds", "threads"})
    assert isinstance(policy.probes, frozenset)


# -- precedence: argument > environment > default -----------------------------------------


@given(
    field=st.sampled_from(FIELDS),
    data=st.data(),
)
def test_argument_beats_environment_beats_default(field: str, data: st.DataObject) -> None:
    setting = BY_FIELD[field]
    from_env = data.draw(strategies.VALID[field], label="environment")
    argument = data.draw(strategies.VALID[field], label="argument")
    environ = Policy(**{field: from_env}).to_env()
    only_this = {setting.env: environ[setting.env]}

    assert getattr(Policy.from_env(environ={}), field) == getattr(Policy(), field)
    assert getattr(Policy.from_env(environ=only_this), field) == from_env
    assert getattr(Policy.from_env(environ=only_this, **{field: argument}), field) == argument


def test_precedence_through_the_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHANDLER_LEAK_AFTER", "5")
    monkeypatch.setenv("SAFEHANDLER_THREAD_GRACE_MS", "20")
    both = engine_of(safehandler.guard(leak_after=3)(handler))
    env_only = engine_of(safehandler.guard(handler))
    monkeypatch.delenv("SAFEHANDLER_LEAK_AFTER")
    default = engine_of(safehandler.guard(handler))
    assert both is not None
    assert env_only is not None
    assert default is not None
    assert (both.policy.leak_after, both.policy.thread_grace_ms) == (3, 20.0)
    assert (env_only.policy.leak_after, env_only.policy.thread_grace_ms) == (5, 20.0)
    assert (default.policy.leak_after, default.policy.thread_grace_ms) == (2, 20.0)
    assert both.judge.tracker.leak_after == 3


def test_a_bad_variable_is_an_error_even_when_an_argument_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The argument wins over a good value; a bad one is a typo someone should hear about.
    monkeypatch.setenv("SAFEHANDLER_FD_THRESHOLD", "1.5")
    with pytest.raises(ConfigError, match=r"^SAFEHANDLER_FD_THRESHOLD='1.5': must be"):
        safehandler.guard(fd_threshold=0.3)
    monkeypatch.setenv("SAFEHANDLER_FD_THRESHOLD", "0.9")
    engine = engine_of(safehandler.guard(fd_threshold=0.3)(handler))
    assert engine is not None
    assert engine.policy.fd_threshold == 0.3


def test_policy_argument_is_used_whole_and_settings_beside_it_override_its_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFEHANDLER_LEAK_AFTER", "5")
    given_policy = Policy(mode="strict", leak_after=4, memory_window=10)
    whole = engine_of(safehandler.guard(policy=given_policy)(handler))
    overridden = engine_of(safehandler.guard(policy=given_policy, leak_after=7)(handler))
    assert whole is not None
    assert overridden is not None
    assert whole.policy == given_policy
    assert overridden.policy == Policy(mode="strict", leak_after=7, memory_window=10)


# -- errors -----------------------------------------------------------------------------


def test_bad_variable_message_names_variable_value_and_range() -> None:
    with pytest.raises(safehandler.ConfigError) as excinfo:
        Policy.from_env(environ={"SAFEHANDLER_FD_THRESHOLD": "1.5"})
    assert str(excinfo.value) == "SAFEHANDLER_FD_THRESHOLD='1.5': must be a number in (0, 1]"
    assert isinstance(excinfo.value, ValueError)
    assert isinstance(excinfo.value, safehandler.SafeHandlerError)


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("SAFEHANDLER_MODE", "loud", "SAFEHANDLER_MODE='loud': must be report, strict or off"),
        (
            "SAFEHANDLER_LEAK_AFTER",
            "two",
            "SAFEHANDLER_LEAK_AFTER='two': must be an integer in [1, 1000000]",
        ),
        (
            "SAFEHANDLER_MEMORY_LIMIT_MB",
            "512MB",
            "SAFEHANDLER_MEMORY_LIMIT_MB='512MB': must be auto or an integer in [1, 1048576]",
        ),
        (
            "SAFEHANDLER_PROBES",
            "fds,sockets",
            "SAFEHANDLER_PROBES='fds,sockets': must be a comma-separated, non-empty subset of "
            + ", ".join(PROBE_NAMES),
        ),
        (
            "SAFEHANDLER_PROBES",
            "",
            "SAFEHANDLER_PROBES='': must be a comma-separated, non-empty subset of "
            + ", ".join(PROBE_NAMES),
        ),
        (
            "SAFEHANDLER_THREAD_GRACE_MS",
            "nan",
            "SAFEHANDLER_THREAD_GRACE_MS='nan': must be a number in [0, 60000]",
        ),
    ],
)
def test_bad_variable_messages(variable: str, raw: str, message: str) -> None:
    with pytest.raises(safehandler.ConfigError) as excinfo:
        Policy.from_env(environ={variable: raw})
    assert str(excinfo.value) == message


@given(strategies.invalid_env_values())
def test_every_bad_variable_raises_config_error_naming_it(case: tuple[Setting, str]) -> None:
    setting, raw = case
    with pytest.raises(safehandler.ConfigError) as excinfo:
        Policy.from_env(environ={setting.env: raw})
    assert str(excinfo.value) == f"{setting.env}={raw!r}: must be {setting.accepted}"


@given(strategies.invalid_arguments())
def test_every_bad_argument_raises_config_error_naming_the_field(case: tuple[str, Any]) -> None:
    field, value = case
    accepted = BY_FIELD[field].accepted
    for build in (
        lambda: Policy(**{field: value}),
        lambda: Policy.from_env(environ={}, **{field: value}),
        lambda: Policy().replace(**{field: value}),
        lambda: safehandler.guard(**{field: value}),
    ):
        with pytest.raises(safehandler.ConfigError) as excinfo:
            build()
        assert str(excinfo.value).startswith(f"{field}=")
        assert str(excinfo.value).endswith(f": must be {accepted}")


def test_guard_with_a_bad_argument_raises_at_once_not_when_called() -> None:
    with pytest.raises(safehandler.ConfigError) as excinfo:
        safehandler.guard(fd_threshold=2)
    assert str(excinfo.value) == "fd_threshold=2: must be a number in (0, 1]"
    with pytest.raises(safehandler.ConfigError, match=r"^leak_after=0: "):
        safehandler.guard(handler, leak_after=0)
    with pytest.raises(safehandler.ConfigError, match=r"^leak_after=0: "):
        safehandler.guard(policy=Policy(), leak_after=0)


def test_bad_variable_raises_when_the_bare_decorator_is_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFEHANDLER_FD_THRESHOLD", "1.5")
    called = []

    with pytest.raises(safehandler.ConfigError) as excinfo:

        @safehandler.guard
        def app(event: Any, context: Any) -> None:
            called.append(event)

    assert str(excinfo.value) == "SAFEHANDLER_FD_THRESHOLD='1.5': must be a number in (0, 1]"
    with pytest.raises(safehandler.ConfigError, match=r"^SAFEHANDLER_FD_THRESHOLD="):
        safehandler.guard()
    assert called == []


@pytest.mark.parametrize("variable", ENV_NAMES)
def test_a_bad_value_of_each_variable_fails_the_decorator(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    bad = "a b" if variable.startswith("SAFEHANDLER_ALLOW_") else "-1.5x"  # any pattern goes
    if variable == "SAFEHANDLER_METRICS_NAMESPACE":
        bad = "AWS/Lambda"  # (-1.5x is a namespace; AWS/ is CloudWatch's own)
    bad = "(-1.5x" if variable == "SAFEHANDLER_REDACT" else bad  # any regex goes
    monkeypatch.setenv(variable, bad)
    with pytest.raises(safehandler.ConfigError) as excinfo:
        safehandler.guard(handler)
    assert str(excinfo.value).startswith(f"{variable}={bad!r}: must be ")


def test_unknown_setting_names_list_the_accepted_ones() -> None:
    accepted = ", ".join(FIELDS)
    with pytest.raises(safehandler.ConfigError) as excinfo:
        safehandler.guard(fd_treshold=0.5)
    assert str(excinfo.value) == f"unknown setting(s) fd_treshold: accepted are {accepted}"
    with pytest.raises(safehandler.ConfigError) as excinfo:
        Policy.from_env(environ={}, zeta=1, alpha=2)
    assert str(excinfo.value) == f"unknown setting(s) alpha, zeta: accepted are {accepted}"
    with pytest.raises(safehandler.ConfigError, match=r"^unknown setting\(s\) colour: "):
        safehandler.guard(policy=Policy(), colour="red")


@pytest.mark.parametrize("policy", ["strict", {"mode": "strict"}, Policy().to_env(), 1])
def test_policy_of_the_wrong_type_is_refused(policy: Any) -> None:
    with pytest.raises(safehandler.ConfigError) as excinfo:
        safehandler.guard(policy=policy)
    assert str(excinfo.value) == f"policy={policy!r}: must be a safehandler.Policy"


def test_logger_without_warning_is_refused() -> None:
    with pytest.raises(safehandler.ConfigError, match=r"must have a warning\(\) method$"):
        safehandler.guard(logger="root")


def test_probes_setting_documents_every_probe_name() -> None:
    assert {"fds", "threads", "memory"} <= set(PROBE_NAMES)
    assert BY_FIELD["probes"].accepted == "a comma-separated, non-empty subset of " + ", ".join(
        PROBE_NAMES
    )
    assert Policy.from_env(environ={"SAFEHANDLER_PROBES": ",".join(PROBE_NAMES)}) == Policy()


def test_the_growth_span_is_32_in_production_and_1_in_strict_mode_and_soaks() -> None:
    assert Policy().growth_span == 32
    assert Policy(mode="strict").growth_span == 1
    assert Policy(warmup=1).growth_span == 1
    assert Policy(leak_after=1).growth_span == 1  # zero tolerance asked for
    assert Policy(leak_span=5).growth_span == 5
    assert Policy.from_env({"SAFEHANDLER_LEAK_SPAN": "1"}).growth_span == 1
