"""The settings: what safehandler watches, how long it tolerates growth, and what it does.

``Policy`` is immutable and built from keywords. ``Policy.from_env()`` reads ``SAFEHANDLER_*``
variables; the precedence is argument > environment > default. Every value is checked when the
policy is built (at import or decoration time), and a bad one raises ``ConfigError`` naming the
setting, the value and the accepted range.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from . import _constants as env
from ._redact import compile_patterns, split_patterns
from ._warn import error, warn
from .errors import ConfigError

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, Literal, NamedTuple

    Mode = Literal["report", "strict", "off"]
    DbCleanup = Literal["off", "leaks", "all"]
    Recycle = Literal["auto", "off"]
    Isolation = Literal["report", "restore"]
    Metrics = Literal["off", "emf", "otel", "on"]
else:
    from ._tuple import NamedTuple

__all__ = ["PROBE_NAMES", "SETTINGS", "Policy", "Setting"]

MODES: tuple[Mode, ...] = ("report", "strict", "off")
PROBE_NAMES = ("fds", "threads", "processes", "db", "globals", "memory")
DB_CLEANUPS: tuple[DbCleanup, ...] = ("off", "leaks", "all")
RECYCLES: tuple[Recycle, ...] = ("auto", "off")
ISOLATIONS: tuple[Isolation, ...] = ("report", "restore")
METRICS: tuple[Metrics, ...] = ("off", "emf", "otel", "on")


class Setting(NamedTuple):
    """One row of the settings table: the field, its variable, its range and what it means."""

    field: str
    env: str
    default: Any
    accepted: str
    parse: Callable[[str], Any]
    check: Callable[[Any], bool]
    meaning: str


def _parse_int(text: str) -> int:
    return int(text.strip())


def _parse_float(text: str) -> float:
    import math  # an extension module: loaded when a number is read from the environment

    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _parse_optional_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "auto") else _parse_int(text)


def _patterns(value: object) -> bool:
    return isinstance(value, frozenset) and all(
        isinstance(p, str) and p and not any(c.isspace() for c in p) for p in value
    )


def _parse_names(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _parse_optional_text(text: str) -> str | None:
    return None if text.strip().lower() in ("", "auto") else text.strip()


def _namespace(value: object) -> bool:
    # CloudWatch's rule: 1 to 255 ASCII characters of these, not all spaces, not "AWS/...";
    # and no spaces around it (the environment's value is stripped: it must read back)
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/#: ")
    return value is None or (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and value == value.strip() != ""
        and value.lower() != "auto"
        and set(value) <= allowed
        and not value.startswith("AWS/")
    )


def _regexes(value: object) -> bool:
    """Regular expressions that compile, each one as ``split_patterns`` would read it back."""
    if not isinstance(value, frozenset) or not all(isinstance(p, str) for p in value):
        return False
    if any(split_patterns(pattern) != {pattern} for pattern in value):
        return False
    if not value:
        return True  # (and no re loaded: 3 ms of cold start)
    import re

    try:
        compile_patterns(value)
    except re.error:
        return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_in(low: int, high: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _fraction(value: object) -> bool:
    return _is_number(value) and 0 < value <= 1  # type: ignore[operator]  # a number here


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "mode",
        env.MODE,
        "report",
        "report, strict or off",
        str.strip,
        lambda v: v in MODES,
        "report: log each finding once as a JSON line; strict: raise the matching LeakError "
        "(tests, soaks); off: call the handler and nothing else",
    ),
    Setting(
        "leak_after",
        env.LEAK_AFTER,
        2,
        "an integer in [1, 1000000]",
        _parse_int,
        _int_in(1, 1_000_000),
        "a creation site is reported once it has retained new resources in this many "
        "invocations (1: the first retention; 2: lazy initialisation is not a leak)",
    ),
    Setting(
        "leak_span",
        env.LEAK_SPAN,
        None,
        "auto or an integer in [1, 1000000]",
        _parse_optional_int,
        lambda v: v is None or _int_in(1, 1_000_000)(v),
        "growth of the handler's state is reported once it has gone on for this many "
        "invocations since it started without dying out, what a pool keeps (files, "
        "sockets, idle threads) after at most 8 (threads, processes, shared state and DB "
        "connections as leak_after says): a memo of the tenants seen or a pool that stops "
        "at three grows fast, then stops. auto: 32 in "
        "report mode; 1 in strict mode, in soaks (which tell a growth that stopped apart "
        "after the fact) and with leak_after=1",
    ),
    Setting(
        "warmup",
        env.WARMUP,
        0,
        "an integer in [0, 1000000]",
        _parse_int,
        _int_in(0, 1_000_000),
        "growth in the first invocations is initialisation, not a leak (threads excepted); "
        "soaks set 1 with leak_after=1: zero tolerance after warm-up",
    ),
    Setting(
        "thread_grace_ms",
        env.THREAD_GRACE_MS,
        10.0,
        "a number in [0, 60000]",
        _parse_float,
        lambda v: _is_number(v) and 0 <= v <= 60_000,
        "how long to wait for threads started in the invocation to finish before they count",
    ),
    Setting(
        "fd_threshold",
        env.FD_THRESHOLD,
        0.5,
        "a number in (0, 1]",
        _parse_float,
        _fraction,
        "open fds above this fraction of the soft RLIMIT_NOFILE mark the environment unhealthy",
    ),
    Setting(
        "memory_threshold",
        env.MEMORY_THRESHOLD,
        # Python's RSS rarely shrinks and Lambda kills the invocation that crosses the limit,
        # so keep a fifth of the memory as headroom for the peak of the next invocation.
        0.8,
        "a number in (0, 1]",
        _parse_float,
        _fraction,
        "RSS above this fraction of the memory limit marks the environment unhealthy",
    ),
    Setting(
        "memory_limit_mb",
        env.MEMORY_LIMIT_MB,
        None,
        "auto or an integer in [1, 1048576]",
        _parse_optional_int,
        lambda v: v is None or _int_in(1, 1_048_576)(v),
        "the memory limit; auto: AWS_LAMBDA_FUNCTION_MEMORY_SIZE, else the cgroup limit",
    ),
    Setting(
        "memory_window",
        env.MEMORY_WINDOW,
        100,
        "an integer in [2, 1000000]",
        _parse_int,
        _int_in(2, 1_000_000),
        "invocations per window of the memory trend (the minimum RSS of each window is compared)",
    ),
    Setting(
        "memory_leak_kb",
        env.MEMORY_LEAK_KB,
        4.0,
        "a number in (0, 1048576]",
        _parse_float,
        lambda v: _is_number(v) and 0 < v <= 1_048_576,
        "RSS growth per invocation, sustained over three windows, that is reported as a leak",
    ),
    Setting(
        "db_cleanup",
        env.DB_CLEANUP,
        "leaks",
        "off, leaks or all",
        str.strip,
        lambda v: v in DB_CLEANUPS,
        "at the end of each invocation: leaks: roll back open transactions and close the "
        "connections of sites judged leaking, dispose their engines; all: also close every "
        "connection the invocation opened and left open; off: report only",
    ),
    Setting(
        "recycle",
        env.RECYCLE,
        "auto",
        "auto or off",
        str.strip,
        lambda v: v in RECYCLES,
        "auto: an unhealthy environment exits between invocations, after the response is "
        "posted (restarted by the layer's wrapper; report only on Lambda Managed Instances); "
        "off: report only",
    ),
    Setting(
        "isolation",
        env.ISOLATION,
        "report",
        "report or restore",
        str.strip,
        lambda v: v in ISOLATIONS,
        "restore: at the end of each invocation put back global state it changed and was not "
        "its to change (stdlib attributes, builtins, os.environ, sys.path, logging handlers, "
        "cwd, signal handlers; handler globals judged leaking); report: only report",
    ),
    Setting(
        "shared_state_every",
        env.SHARED_STATE_EVERY,
        None,
        "auto or an integer in [1, 64]",
        _parse_optional_int,
        lambda v: v is None or _int_in(1, 64)(v),
        "the shared state the globals probe watches (builtins, stdlib attributes, sys.modules, "
        "os.environ, sys.path, logging handlers, cwd, signal handlers) is checked in turn, a "
        "slice per invocation, over this many invocations: a change there is reported within "
        "that many; the handler's own globals are checked every time. auto: 8 in report mode, "
        "1 in strict mode, in soaks (warmup) and with isolation=restore",
    ),
    Setting(
        "allow_globals",
        env.ALLOW_GLOBALS,
        frozenset(),
        "comma-separated module.attribute patterns (no spaces)",
        _parse_names,
        _patterns,
        "intended state (caches, registries): not reported when mutated, only when it grows "
        "in 10 invocations in a row (or mark the object with safehandler.allow_global)",
    ),
    Setting(
        "allow_threads",
        env.ALLOW_THREADS,
        frozenset(),
        "comma-separated thread-name or module patterns (no spaces)",
        _parse_names,
        _patterns,
        "known-good threads left running: matched against the thread's name and the module "
        "that started it",
    ),
    Setting(
        "probes",
        env.PROBES,
        frozenset(PROBE_NAMES),
        f"a comma-separated, non-empty subset of {', '.join(PROBE_NAMES)}",
        _parse_names,
        lambda v: isinstance(v, frozenset) and bool(v) and v <= frozenset(PROBE_NAMES),
        "which probes run (mode=off runs none)",
    ),
    Setting(
        "metrics",
        env.METRICS,
        "off",
        "off, emf, otel or on",
        str.strip,
        lambda v: v in METRICS,
        "the fleet view: emf: the environment's figures (fds and their share of the limit, "
        "RSS and its share, threads, DB connections, findings by kind, unhealthy marks, "
        "recycles) as CloudWatch EMF lines on stdout, at the first invocation, on an unhealthy "
        "mark, before a recycle, else at most every 100 invocations or 60 s; otel: as "
        "OpenTelemetry metrics; on: EMF, and OpenTelemetry where a meter provider is set up",
    ),
    Setting(
        "metrics_namespace",
        env.METRICS_NAMESPACE,
        None,
        "auto or a CloudWatch namespace (1 to 255 of A-Z a-z 0-9 . _ - / # : and space)",
        _parse_optional_text,
        _namespace,
        "the metrics' namespace; auto: POWERTOOLS_METRICS_NAMESPACE, else the namespace of "
        "the Powertools Metrics given to guard(metrics=...), else safehandler",
    ),
    Setting(
        "redact_patterns",
        env.REDACT,
        frozenset(),
        "regular expressions separated by commas or newlines (a comma inside (), [] or {} "
        "belongs to its pattern)",
        split_patterns,
        _regexes,
        "your own secrets, hidden as *** in every output beside the built-in corpus (key names, "
        "URL passwords, tokens); with a group, only what the first group matched is hidden",
    ),
)
_BY_FIELD = {setting.field: setting for setting in SETTINGS}
# the settings that are sets of names: built from any collection of them
_NAME_SETS = frozenset(
    setting.field for setting in SETTINGS if setting.parse in (_parse_names, split_patterns)
)


def _reject_unknown(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(_BY_FIELD))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}: accepted are {', '.join(_BY_FIELD)}"
        )


class Policy:
    """What safehandler does around each invocation. Build it with ``Policy.from_env()``.

    Immutable. ``Policy(mode="strict")`` takes settings by keyword (the others default) and
    checks each one; ``replace()`` gives a changed copy.
    """

    __slots__ = tuple(setting.field for setting in SETTINGS)
    mode: Mode
    leak_after: int
    leak_span: int | None
    warmup: int
    thread_grace_ms: float
    fd_threshold: float
    memory_threshold: float
    memory_limit_mb: int | None
    memory_window: int
    memory_leak_kb: float
    db_cleanup: DbCleanup
    recycle: Recycle
    isolation: Isolation
    shared_state_every: int | None
    allow_globals: frozenset[str]
    allow_threads: frozenset[str]
    probes: frozenset[str]
    metrics: Metrics
    metrics_namespace: str | None
    redact_patterns: frozenset[str]

    def __init__(self, **settings: Any) -> None:
        _reject_unknown(settings)
        for setting in SETTINGS:
            value = settings.get(setting.field, setting.default)
            if setting.field in _NAME_SETS and isinstance(value, (list, tuple, set)):
                value = frozenset(value)  # accept any collection of names
            if not setting.check(value):
                raise ConfigError(f"{setting.field}={value!r}: must be {setting.accepted}")
            object.__setattr__(self, setting.field, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Policy is immutable: use replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Policy is immutable: cannot delete .{name}")

    def as_dict(self) -> dict[str, Any]:
        """Every setting by field name, in the settings table's order."""
        return {field: getattr(self, field) for field in self.__slots__}

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, through the checks again
        return (_policy_from, (self.as_dict(),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{field}={value!r}" for field, value in self.as_dict().items())
        return f"Policy({fields})"

    @property
    def strict(self) -> bool:
        return self.mode == "strict"

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def thorough(self) -> bool:
        """Strict tests, soaks and restore: every check on every invocation, cost second."""
        return self.strict or self.warmup > 0 or self.isolation == "restore"

    @property
    def tracks_db(self) -> bool:
        """Whether the database drivers are watched (their integrations attached)."""
        return "db" in self.probes

    @property
    def growth_span(self) -> int:
        """``leak_span`` with auto resolved."""
        if self.leak_span is not None:
            return self.leak_span
        return 1 if self.strict or self.warmup > 0 or self.leak_after == 1 else 32

    @property
    def shared_state_rotation(self) -> int:
        """``shared_state_every`` with auto resolved."""
        if self.shared_state_every is not None:
            return self.shared_state_every
        return 1 if self.thorough else 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Policy:
        """Defaults, overridden by ``SAFEHANDLER_*`` variables, overridden by ``overrides``."""
        environ = os.environ if environ is None else environ
        _reject_unknown(overrides)
        # Under the layer's wrapper a variable is a console edit, not code: a typo there must
        # not stop the function. One error line per bad variable, and its default is used.
        fail_open = environ.get(env.SUPERVISED) == "1"
        _warn_unknown_variables(environ, as_error=fail_open)
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env)
            if raw is None:
                continue  # (a value overridden by an argument is still checked: it is a typo)
            try:
                value = setting.parse(raw)
            except ValueError:
                value = raw
            if not setting.check(value):
                problem = f"{setting.env}={raw!r}: must be {setting.accepted}"
                if not fail_open:
                    raise ConfigError(problem)
                _report_once(setting.env, f"{problem}; the default {_shown(setting)} is used")
                continue
            values[setting.field] = value
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Policy:
        """A copy with ``changes`` applied (and validated)."""
        return Policy(**(self.as_dict() | changes))

    def to_env(self) -> dict[str, str]:
        """The ``SAFEHANDLER_*`` variables that rebuild this policy (for subprocesses)."""
        out: dict[str, str] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            if value is None:
                out[setting.env] = "auto"
            elif isinstance(value, frozenset):
                out[setting.env] = ",".join(sorted(value))
            else:
                out[setting.env] = str(value)
        return out


_KNOWN_VARIABLES = frozenset(setting.env for setting in SETTINGS) | frozenset(env.NOT_POLICY)
_warned: set[str] = set()


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``SAFEHANDLER_*`` variables no setting reads, each with the closest real one."""
    unknown = sorted(
        name for name in environ if name.startswith(env.PREFIX) and name not in _KNOWN_VARIABLES
    )
    if not unknown:
        return []
    import difflib  # only for a typo: 2 ms of cold start otherwise

    settings = sorted(setting.env for setting in SETTINGS)
    return [
        (name, next(iter(difflib.get_close_matches(name, settings, n=1, cutoff=0.6)), None))
        for name in unknown
    ]


def _warn_unknown_variables(environ: Mapping[str, str], *, as_error: bool = False) -> None:
    """One warning per unknown variable and process: a typo must be heard, never fatal.
    Under the layer, an error line: the setting meant is at its default, which was not meant."""
    for name, closest in unknown_variables(environ):
        if name in _warned:
            continue
        _warned.add(name)
        hint = f"; did you mean {closest}?" if closest else ""
        if as_error:
            accepted = _BY_ENV[closest].accepted if closest in _BY_ENV else ""
            accepted = f" (accepted: {accepted})" if accepted else ""
            error(
                "safehandler: %s=%r is not a setting and is ignored%s%s",
                name,
                environ[name],
                hint,
                accepted,
            )
        else:
            warn("safehandler: %s is not a setting and is ignored%s", name, hint)


def _report_once(variable: str, problem: str) -> None:
    if variable not in _warned:
        _warned.add(variable)
        error("safehandler: %s", problem)


def _shown(setting: Setting) -> str:
    default = setting.default
    if default is None:
        return "'auto'"
    if isinstance(default, frozenset):
        return repr(",".join(sorted(default)))
    return repr(default)


_BY_ENV = {setting.env: setting for setting in SETTINGS}


def _policy_from(settings: dict[str, Any]) -> Policy:
    return Policy(**settings)


def settings_table(rows: Iterable[Setting] = SETTINGS) -> str:
    """The README's settings table, generated so it cannot drift from the code."""
    defaults = Policy()
    lines = [
        "| setting | variable | default | accepted | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        default = getattr(defaults, row.field)
        if isinstance(default, frozenset):
            default = ",".join(p for p in PROBE_NAMES if p in default)
        elif default is None:
            default = "auto"
        lines.append(
            f"| `{row.field}` | `{row.env}` | `{default}` | {row.accepted} | {row.meaning} |"
        )
    return "\n".join(lines)
