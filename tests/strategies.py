"""Hypothesis strategies: policies valid and not, and whatever a handler may return or raise.

Valid values are generated from each setting's documented range (``config.SETTINGS``), not from
its ``check``: a check that drifts from its documentation then fails a test instead of
quietly agreeing with itself. ``VALID``, ``INVALID_ARGUMENTS`` and ``INVALID_ENV`` are keyed by
field name, and a test pins their keys to the fields of ``SETTINGS``, so a new setting cannot
go without strategies.
"""

from __future__ import annotations

import math
import string
from typing import Any

from hypothesis import strategies as st

import safehandler
from safehandler.policy import PROBE_NAMES, SETTINGS, Setting

__all__ = [
    "INVALID_ARGUMENTS",
    "INVALID_ENV",
    "SENTINEL",
    "VALID",
    "exceptions",
    "handler_results",
    "invalid_arguments",
    "invalid_env_values",
    "policies",
    "policy_kwargs",
]

MODES = ("report", "strict", "off")
DB_CLEANUPS = ("off", "leaks", "all")
RECYCLES = ("auto", "off")
ISOLATIONS = ("report", "restore")
METRICS = ("off", "emf", "otel", "on")
_NAMESPACE_CHARS = "abcXYZ019._-/#: "  # a sample of what CloudWatch allows, for valid values
_NAMESPACE_ALLOWED = frozenset(string.ascii_letters + string.digits + "._-/#: ")
_NAMESPACES = st.text(alphabet=_NAMESPACE_CHARS, min_size=1, max_size=255).filter(
    lambda text: text == text.strip() != "" and not text.startswith("AWS/")
)
_PATTERN = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="._*?[]-"), min_size=1
)
# regular expressions with commas where they belong to the pattern: {m,n}, [...], escaped
_REGEXES = (r"acme-[0-9a-f]{32}", r"tok_\w{8,}", r"(?i)internal-(\w+)", r"x[,;]y", r"a\,b")
BY_FIELD: dict[str, Setting] = {setting.field: setting for setting in SETTINGS}

# -- valid settings -------------------------------------------------------------------


def _numbers(low: float, high: float, *, exclude_low: bool = False) -> st.SearchStrategy[Any]:
    """ints and floats in the range: both are accepted for a "number" setting."""
    ints = st.integers(math.ceil(low) + (1 if exclude_low and low == int(low) else 0), int(high))
    floats = st.floats(low, high, exclude_min=exclude_low, allow_nan=False)
    return st.one_of(ints, floats)


VALID: dict[str, st.SearchStrategy[Any]] = {
    "mode": st.sampled_from(MODES),
    "leak_after": st.integers(1, 1_000_000),
    "warmup": st.integers(0, 1_000_000),
    "thread_grace_ms": _numbers(0, 60_000),
    "fd_threshold": _numbers(0, 1, exclude_low=True),
    "memory_threshold": _numbers(0, 1, exclude_low=True),
    "memory_limit_mb": st.none() | st.integers(1, 1_048_576),
    "memory_window": st.integers(2, 1_000_000),
    "memory_leak_kb": _numbers(0, 1_048_576, exclude_low=True),
    "db_cleanup": st.sampled_from(DB_CLEANUPS),
    "recycle": st.sampled_from(RECYCLES),
    "isolation": st.sampled_from(ISOLATIONS),
    "shared_state_every": st.none() | st.integers(1, 64),
    "leak_span": st.none() | st.integers(1, 1_000_000),
    "allow_globals": st.frozensets(_PATTERN, max_size=3),
    "allow_threads": st.frozensets(_PATTERN, max_size=3),
    "probes": st.frozensets(st.sampled_from(PROBE_NAMES), min_size=1),
    "metrics": st.sampled_from(METRICS),
    "metrics_namespace": st.none() | _NAMESPACES,
    "redact_patterns": st.frozensets(st.sampled_from(_REGEXES), max_size=3),
}


def policy_kwargs(*, exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the settings, each with a value in its accepted range."""
    return st.fixed_dictionaries(
        {}, optional={name: strategy for name, strategy in VALID.items() if name not in exclude}
    )


def policies() -> st.SearchStrategy[safehandler.Policy]:
    return policy_kwargs().map(lambda kwargs: safehandler.Policy(**kwargs))


# -- invalid settings -----------------------------------------------------------------

# Wrong types, whatever the range: bool is not a number here, a string is not a collection.
_NOT_A_NUMBER = st.sampled_from([None, True, False, "1", "0.5", b"1", [1], {"value": 1}])
_NAN_OR_INF = st.sampled_from([math.nan, math.inf, -math.inf])


def _ints_outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(max_value=low - 1) | st.integers(min_value=high + 1)


def _floats_outside(low: float, high: float, *, low_open: bool) -> st.SearchStrategy[float]:
    # Filtered rather than exclude_max: -0.0 is not below 0 for a range that includes 0.
    below = st.floats(max_value=low, allow_nan=False).filter(
        lambda value: value <= low if low_open else value < low
    )
    above = st.floats(min_value=high, exclude_min=True, allow_nan=False)
    return below | above


def _int_setting_arguments(low: int, high: int) -> st.SearchStrategy[Any]:
    # 2.0 is out too: an integer setting takes an int.
    return _ints_outside(low, high) | st.floats(low, high) | _NOT_A_NUMBER


def _number_setting_arguments(low: float, high: float, *, low_open: bool) -> st.SearchStrategy[Any]:
    return _floats_outside(low, high, low_open=low_open) | _NAN_OR_INF | _NOT_A_NUMBER


INVALID_ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "mode": st.one_of(
        st.text().filter(lambda text: text not in MODES),
        st.sampled_from(["STRICT", " report", "Off", None, 0, True]),
    ),
    "leak_after": _int_setting_arguments(1, 1_000_000),
    "warmup": _int_setting_arguments(0, 1_000_000),
    "thread_grace_ms": _number_setting_arguments(0, 60_000, low_open=False),
    "fd_threshold": _number_setting_arguments(0, 1, low_open=True),
    "memory_threshold": _number_setting_arguments(0, 1, low_open=True),
    "memory_limit_mb": _ints_outside(1, 1_048_576) | st.sampled_from([512.0, "512", True, b"512"]),
    "memory_window": _int_setting_arguments(2, 1_000_000),
    "memory_leak_kb": _number_setting_arguments(0, 1_048_576, low_open=True),
    "db_cleanup": st.one_of(
        st.text().filter(lambda text: text not in DB_CLEANUPS),
        st.sampled_from(["ALL", " leaks", None, False, 0]),
    ),
    "recycle": st.one_of(
        st.text().filter(lambda text: text not in RECYCLES),
        st.sampled_from(["AUTO", " off", None, True, 0]),
    ),
    "isolation": st.one_of(
        st.text().filter(lambda text: text not in ISOLATIONS),
        st.sampled_from(["RESTORE", " report", None, True]),
    ),
    "shared_state_every": _ints_outside(1, 64) | st.sampled_from([8.0, "8", True, b"8"]),
    "leak_span": _ints_outside(1, 1_000_000) | st.sampled_from([32.0, "32", True, b"32"]),
    "allow_globals": st.sampled_from(["app.CACHE", None, 1, frozenset({"a b"}), frozenset({""})]),
    "allow_threads": st.sampled_from(["worker", None, 1, frozenset({"a\tb"}), frozenset({""})]),
    "redact_patterns": st.sampled_from(
        ["tok_\\w+", None, 1, frozenset({"("}), frozenset({""}), frozenset({" a"}), {"a,b"}]
    ),
    "probes": st.one_of(
        st.sampled_from(["fds", "fds,threads", None, 1, {"fds": True}, frozenset(), ()]),
        st.frozensets(st.sampled_from(PROBE_NAMES)).flatmap(
            lambda good: (
                st.text(min_size=1)
                .filter(lambda name: name not in PROBE_NAMES)
                .map(lambda bad: good | {bad})
            )
        ),
    ),
    "metrics": st.one_of(
        st.text().filter(lambda text: text not in METRICS),
        st.sampled_from(["EMF", " on", "true", None, True, 1]),
    ),
    "metrics_namespace": st.one_of(
        st.sampled_from(["", " ns", "AWS/Lambda", "x" * 256, "café", "a\tb", "auto", 1, b"ns"]),
        st.text(min_size=1).filter(lambda text: bool(set(text) - _NAMESPACE_ALLOWED)),
    ),
}


def invalid_arguments() -> st.SearchStrategy[tuple[str, Any]]:
    """``(field, value)``: a keyword argument that ``Policy``/``guard`` must refuse."""
    return st.sampled_from(sorted(INVALID_ARGUMENTS)).flatmap(
        lambda name: INVALID_ARGUMENTS[name].map(lambda value: (name, value))
    )


_GARBAGE = st.sampled_from(["", " ", "abc", "10ms", "50%", "1,5", "true", "None", "0x10"])


def _int_env(low: int, high: int) -> st.SearchStrategy[str]:
    return st.one_of(
        _ints_outside(low, high).map(str),
        st.integers(low, high).map(lambda n: f"{n}.5"),
        st.sampled_from([f"{low}.0", f"{low}e0", "nan", "inf"]),
        _GARBAGE,
    )


def _number_env(low: float, high: float, *, low_open: bool) -> st.SearchStrategy[str]:
    return st.one_of(
        _floats_outside(low, high, low_open=low_open).map(repr),
        _ints_outside(int(low) + (1 if low_open else 0), int(high)).map(str),
        st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400"]),
        _GARBAGE,
    )


def _probe_lists_with_unknown() -> st.SearchStrategy[str]:
    known = st.lists(st.sampled_from(PROBE_NAMES), max_size=3)
    unknown = st.text(st.characters(categories=("L", "N")), min_size=1).filter(
        lambda name: name not in PROBE_NAMES
    )
    return st.tuples(known, unknown, st.integers(0, 3)).map(
        lambda parts: ",".join([*parts[0][: parts[2]], parts[1], *parts[0][parts[2] :]])
    )


INVALID_ENV: dict[str, st.SearchStrategy[str]] = {
    "mode": st.text().filter(lambda text: text.strip() not in MODES),
    "leak_after": _int_env(1, 1_000_000),
    "warmup": _int_env(0, 1_000_000),
    "thread_grace_ms": _number_env(0, 60_000, low_open=False),
    "fd_threshold": _number_env(0, 1, low_open=True),
    "memory_threshold": _number_env(0, 1, low_open=True),
    # "" and "auto" (any case) mean "work it out": not invalid.
    "memory_limit_mb": st.one_of(
        _ints_outside(1, 1_048_576).map(str),
        st.sampled_from(["512.0", "512MB", "none", "automatic", "1e3", "nan"]),
    ),
    "memory_window": _int_env(2, 1_000_000),
    "memory_leak_kb": _number_env(0, 1_048_576, low_open=True),
    "db_cleanup": st.text().filter(lambda text: text.strip() not in DB_CLEANUPS),
    "recycle": st.text().filter(lambda text: text.strip() not in RECYCLES),
    "isolation": st.text().filter(lambda text: text.strip() not in ISOLATIONS),
    "shared_state_every": st.one_of(
        _ints_outside(1, 64).map(str), st.sampled_from(["8.0", "eight", "none", "1e1", "nan"])
    ),
    "leak_span": st.one_of(
        _ints_outside(1, 1_000_000).map(str), st.sampled_from(["32.0", "many", "none", "nan"])
    ),
    "allow_globals": st.sampled_from(["app.CACHE, a b", "x y", "ok,white space"]),
    "allow_threads": st.sampled_from(["name with space", "a,b c"]),
    "probes": _probe_lists_with_unknown() | st.sampled_from(["FDS", "fd", "fds;threads", "all"]),
    "metrics": st.text().filter(lambda text: text.strip() not in METRICS),
    # "" and "auto" (any case) mean "work it out": not invalid
    "metrics_namespace": st.sampled_from(["AWS/Lambda", "x" * 256, "café", "a\tb", "ns!"]),
    "redact_patterns": st.sampled_from(["(", "tok_\\w+,[a-", "a)", "[z-a]", "*secret", "(?P<"]),
}


def invalid_env_values() -> st.SearchStrategy[tuple[Setting, str]]:
    """``(setting, raw)``: a ``SAFEHANDLER_*`` value that ``Policy.from_env`` must refuse."""
    return st.sampled_from(sorted(INVALID_ENV)).flatmap(
        lambda name: INVALID_ENV[name].map(lambda raw: (BY_FIELD[name], raw))
    )


# -- what a handler returns -----------------------------------------------------------


class _Sentinel:
    def __repr__(self) -> str:
        return "<SENTINEL>"


SENTINEL = _Sentinel()


class Opaque:
    """A plain custom object: only its identity says it came back."""

    def __init__(self, payload: object) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"Opaque({self.payload!r})"


class NeverEqual:
    """Equal to nothing, itself included: a wrapper that copies or compares cannot pass."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "NeverEqual()"


class Touchy:
    """Raises if looked at: the guard must hand it back without truth-testing or hashing it."""

    def __bool__(self) -> bool:
        raise RuntimeError("Touchy.__bool__ called")

    def __len__(self) -> int:
        raise RuntimeError("Touchy.__len__ called")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("Touchy.__eq__ called")

    def __hash__(self) -> int:
        raise RuntimeError("Touchy.__hash__ called")

    def __iter__(self) -> Any:
        raise RuntimeError("Touchy.__iter__ called")

    def __repr__(self) -> str:  # kept safe so Hypothesis can print a failing example
        return "Touchy()"


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN included: identity, not equality, is what is checked
    st.text(),
    st.binary(),
)


def handler_results() -> st.SearchStrategy[Any]:
    """Anything a handler may return: JSON shapes, containers, custom objects, a sentinel."""
    objects = st.one_of(
        st.just(SENTINEL),
        st.builds(object),
        st.builds(Opaque, _SCALARS),
        st.builds(NeverEqual),
        st.builds(Touchy),
        st.just(NotImplemented),
        st.just(Ellipsis),
    )
    return st.recursive(
        _SCALARS | objects,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.tuples(children, children),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
            st.builds(Opaque, children),
        ),
        max_leaves=12,
    )


# -- what a handler raises ------------------------------------------------------------

# Built-in exception classes that take any positional arguments.
BUILTIN_EXCEPTIONS: tuple[type[Exception], ...] = (
    Exception,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    LookupError,
    RuntimeError,
    RecursionError,
    NotImplementedError,
    AttributeError,
    ArithmeticError,
    ZeroDivisionError,
    OverflowError,
    AssertionError,
    StopIteration,
    OSError,  # OSError(errno, text) builds a subclass such as FileNotFoundError: fine too
    ConnectionResetError,
    TimeoutError,
    MemoryError,
    UnicodeError,
    safehandler.SafeHandlerError,  # the handler's own use of our errors passes through too
    safehandler.ConfigError,
)


class HandlerError(Exception):
    """A user's own exception class."""


class PaymentDeclined(HandlerError, ValueError):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.code = len(args)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("UnprintableError.__str__ called")


class FakeKeyboardInterrupt(BaseException):
    """Shaped like KeyboardInterrupt (a BaseException, not an Exception), safe to raise."""


class FakeSystemExit(BaseException):
    def __init__(self, code: object = None) -> None:
        super().__init__(code)
        self.code = code


class FakeGeneratorExit(BaseException):
    pass


CUSTOM_EXCEPTIONS: tuple[type[BaseException], ...] = (
    HandlerError,
    PaymentDeclined,
    UnprintableError,
    FakeKeyboardInterrupt,
    FakeGeneratorExit,
)

_ARGS = st.lists(
    st.one_of(st.none(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False)),
    max_size=3,
).map(tuple)

_IDENTIFIERS = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,15}", fullmatch=True)


def _made_up_class(name: str, base: type[BaseException]) -> type[BaseException]:
    return type(name, (base,), {"__module__": __name__})


def exceptions() -> st.SearchStrategy[BaseException]:
    """Fresh exception instances: built-in, user-defined, and BaseException lookalikes."""
    classes = st.one_of(
        st.sampled_from(BUILTIN_EXCEPTIONS + CUSTOM_EXCEPTIONS),
        st.builds(
            _made_up_class,
            _IDENTIFIERS,
            st.sampled_from((Exception, BaseException, ValueError, FakeKeyboardInterrupt)),
        ),
    )
    built = st.tuples(classes, _ARGS).map(lambda pair: pair[0](*pair[1]))
    system_exit = st.builds(FakeSystemExit, st.none() | st.integers(0, 255) | st.text(max_size=10))
    return built | system_exit
