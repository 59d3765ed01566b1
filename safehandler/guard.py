"""The decorator: ``@safehandler.guard`` or ``@safehandler.guard(policy=..., logger=...)``."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ._engine import Engine
from .errors import ConfigError, error_for
from .policy import Policy

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, TypeVar, overload

    F = TypeVar("F", bound=Callable[..., Any])
else:

    def overload(func: object) -> object:  # typing's for mypy; at runtime the last def wins
        return func


__all__ = ["engine_of", "guard"]


@overload
def guard(
    handler: F, /, *, policy: Policy | None = None, logger: Any = None, **settings: Any
) -> F: ...


@overload
def guard(  # noqa: F811 - ruff sees the runtime overload below TYPE_CHECKING, not typing's
    handler: None = None,
    /,
    *,
    policy: Policy | None = None,
    logger: Any = None,
    **settings: Any,
) -> Callable[[F], F]: ...


def guard(  # noqa: F811 - the implementation of the two overloads above
    handler: F | None = None,
    /,
    *,
    policy: Policy | None = None,
    logger: Any = None,
    **settings: Any,
) -> F | Callable[[F], F]:
    """Watch every invocation of a Lambda handler for resources that outlive it.

    Bare (``@guard``) the policy comes from ``SAFEHANDLER_*`` variables and defaults. Keyword
    settings (``@guard(mode="strict")``) override the environment; ``policy=`` gives a whole
    ``Policy`` (settings given beside it override its fields). ``logger`` may be a stdlib or a
    Powertools ``Logger``. ``metrics`` may be a Powertools ``Metrics``, whose namespace and
    serializer the fleet view then uses (and which switches it on, to ``emf``, if it was off).
    Bad settings raise ``ConfigError`` here, at decoration time.
    """
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigError(f"policy={policy!r}: must be a safehandler.Policy")
    powertools = _powertools_metrics(settings)
    resolved = policy.replace(**_checked(settings)) if policy else Policy.from_env(**settings)
    if powertools is not None and resolved.metrics == "off":
        resolved = resolved.replace(metrics="emf")
    if logger is not None and not callable(getattr(logger, "warning", None)):
        raise ConfigError(f"logger={logger!r}: must have a warning() method")

    def decorate(func: F) -> F:
        if not callable(func):
            raise ConfigError(f"guard() decorates a handler function, not {func!r}")
        return _guarded(func, Engine(resolved, logger, handler=func, metrics=powertools))

    return decorate if handler is None else decorate(handler)


def _powertools_metrics(settings: dict[str, Any]) -> Any:
    """``metrics=`` given a Powertools ``Metrics`` (not a setting's value): taken out."""
    given = settings.get("metrics")
    if given is None or isinstance(given, str):
        return None  # the setting, checked as the others are
    if not (
        type(given).__module__.startswith("aws_lambda_powertools")
        and callable(getattr(given, "serialize_metric_set", None))
    ):
        return None  # refused with the setting's own message
    del settings["metrics"]
    return given


def _checked(settings: dict[str, Any]) -> dict[str, Any]:
    Policy.from_env({}, **settings)  # the same errors for unknown names as without policy=
    return settings


_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


def _code_flags(func: Callable[..., Any]) -> int:
    # inspect.iscoroutinefunction() without importing inspect (5 ms of cold start)
    inner = getattr(func, "__func__", func)  # a bound method
    code = getattr(inner, "__code__", None)
    return int(getattr(code, "co_flags", 0))


def _remaining_ms(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any] | None:
    """The clock of the Lambda context the invocation was called with (not read here: most
    invocations never need it)."""
    context = args[1] if len(args) > 1 else kwargs.get("context")
    try:
        return getattr(context, "get_remaining_time_in_millis", None)
    except Exception:  # noqa: BLE001 - a context whose __getattr__ raises: no deadline known
        return None


def _guarded(handler: F, engine: Engine) -> F:
    flags = _code_flags(handler)
    if flags & (_CO_GENERATOR | _CO_ASYNC_GENERATOR):
        raise ConfigError(
            f"guard() cannot watch {getattr(handler, '__qualname__', handler)!r}: it is a "
            "generator function, whose body runs only when the result is iterated, after the "
            "invocation returned"
        )
    if not engine.active:

        @functools.wraps(handler)
        def unguarded(*args: Any, **kwargs: Any) -> Any:
            return handler(*args, **kwargs)

        unguarded.__safehandler__ = engine  # type: ignore[attr-defined]
        return unguarded  # type: ignore[return-value]

    before, after = engine.before, engine.after
    strict = engine.policy.strict
    if flags & _CO_COROUTINE:

        @functools.wraps(handler)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            # the scope lives in the task's context: what the awaited handler creates is its
            token = before(_remaining_ms(args, kwargs))
            if token is None:  # nested in another guarded invocation, which owns it
                return await handler(*args, **kwargs)
            try:
                result = await handler(*args, **kwargs)
            except BaseException:
                after(token, failed=True)
                raise
            findings = after(token, failed=False)
            if findings and strict:
                raise error_for(findings)
            return result

        guarded_async.__safehandler__ = engine  # type: ignore[attr-defined]
        return guarded_async  # type: ignore[return-value]

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # exactly the call shapes the handler accepts: handler(event), handler(event, context)
        token = before(_remaining_ms(args, kwargs))
        if token is None:  # nested in another guarded invocation, which owns it
            return handler(*args, **kwargs)
        try:
            result = handler(*args, **kwargs)
        except BaseException:
            after(token, failed=True)
            raise
        findings = after(token, failed=False)
        if findings and strict:
            raise error_for(findings)
        return result

    guarded.__safehandler__ = engine  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


def engine_of(handler: Callable[..., Any]) -> Engine | None:
    """The engine behind a guarded handler, through any decorators stacked on top of it."""
    seen: Callable[..., Any] | None = handler
    while seen is not None:
        engine = getattr(seen, "__safehandler__", None)
        if isinstance(engine, Engine):
            return engine
        seen = getattr(seen, "__wrapped__", None)
    return None
