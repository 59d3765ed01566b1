"""The one exception tree of safehandler.

Import-free on purpose: every other module imports this one, and cold starts pay for imports.
Leak errors also subclass ``AssertionError`` so pytest shows them as test failures, not errors.
"""

from __future__ import annotations

from collections.abc import Sequence

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from ._records import Finding

__all__ = [
    "ConfigError",
    "GlobalMutationError",
    "LeakError",
    "LeakedConnectionError",
    "LeakedProcessError",
    "LeakedThreadError",
    "MemoryGrowthError",
    "SafeHandlerError",
    "TargetError",
    "UnclosedFdError",
    "UnclosedSocketError",
]


class SafeHandlerError(Exception):
    """Root of every error safehandler raises on purpose."""


class ConfigError(SafeHandlerError, ValueError):
    """A setting (decorator argument or ``SAFEHANDLER_*`` variable) is out of range."""


class TargetError(SafeHandlerError):
    """The handler to soak cannot be found or loaded, or its events cannot be read."""


class LeakError(SafeHandlerError, AssertionError):
    """A strict policy found resources that outlived the invocation."""

    kind = "resource"

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        lines = [f"safehandler found {len(self.findings)} leak(s):"]
        lines += [f"  - {finding}" for finding in self.findings]
        super().__init__("\n".join(lines))


class UnclosedFdError(LeakError):
    kind = "fd"


class UnclosedSocketError(LeakError):
    kind = "socket"


class LeakedConnectionError(LeakError):
    kind = "db_connection"


class LeakedThreadError(LeakError):
    kind = "thread"


class LeakedProcessError(LeakError):
    kind = "process"


class GlobalMutationError(LeakError):
    kind = "global"


class MemoryGrowthError(LeakError):
    kind = "memory"


def error_for(findings: Sequence[Finding]) -> LeakError:
    """The most specific error for ``findings``: the class of the first finding's kind."""
    by_kind = {cls.kind: cls for cls in LeakError.__subclasses__()}
    cls = by_kind.get(findings[0].kind, LeakError) if findings else LeakError
    return cls(findings)
