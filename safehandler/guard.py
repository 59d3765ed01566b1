"""The decorator: ``@safehandler.guard`` or ``@safehandler.guard(policy=..., logger=...)``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._engine import Engine
from .errors import ConfigError, error_for
from .policy import Policy

__all__ = ["engine_of", "guard"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def guard(
    handler: F, /, *, policy: Policy | None = None, logger: Any = None, **settings: Any
) -> F: ...


@overload
def guard(
    handler: None = None, /, *, policy: Policy | None = None, logger: Any = None, **settings: Any
) -> Callable[[F], F]: ...


def guard(
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
    Powertools ``Logger``. Bad settings raise ``ConfigError`` here, at decoration time.
    """
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigError(f"policy={policy!r}: must be a safehandler.Policy")
    resolved = policy.replace(**_checked(settings)) if policy else Policy.from_env(**settings)
    if logger is not None and not callable(getattr(logger, "warning", None)):
        raise ConfigError(f"logger={logger!r}: must have a warning() method")

    def decorate(func: F) -> F:
        if not callable(func):
            raise ConfigError(f"guard() decorates a handler function, not {func!r}")
        return _guarded(func, Engine(resolved, logger, handler=func))

    return decorate if handler is None else decorate(handler)


def _checked(settings: dict[str, Any]) -> dict[str, Any]:
    Policy.from_env({}, **settings)  # the same errors for unknown names as without policy=
    return settings


def _guarded(handler: F, engine: Engine) -> F:
    if not engine.active:

        @functools.wraps(handler)
        def unguarded(*args: Any, **kwargs: Any) -> Any:
            return handler(*args, **kwargs)

        unguarded.__safehandler__ = engine  # type: ignore[attr-defined]
        return unguarded  # type: ignore[return-value]

    before, after = engine.before, engine.after

    @functools.wraps(handler)
    def guarded(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        token = before()
        try:
            result = handler(event, context, *args, **kwargs)
        except BaseException:
            after(token, failed=True)
            raise
        findings = after(token, failed=False)
        if findings and engine.policy.strict:
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
