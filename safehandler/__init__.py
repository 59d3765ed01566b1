"""safehandler: keep long-lived serverless handlers healthy.

Importing this module imports neither sqlalchemy, pymysql nor Powertools: cold starts pay for
every import.
"""

from __future__ import annotations

from ._constants import VERSION
from ._records import Finding
from .errors import (
    ConfigError,
    GlobalMutationError,
    LeakedConnectionError,
    LeakedProcessError,
    LeakedThreadError,
    LeakError,
    MemoryGrowthError,
    SafeHandlerError,
    UnclosedFdError,
    UnclosedSocketError,
)
from .guard import guard
from .policy import Policy
from .probes.globals import allow_global

__version__ = VERSION

__all__ = [
    "ConfigError",
    "Finding",
    "GlobalMutationError",
    "LeakError",
    "LeakedConnectionError",
    "LeakedProcessError",
    "LeakedThreadError",
    "MemoryGrowthError",
    "Policy",
    "SafeHandlerError",
    "UnclosedFdError",
    "UnclosedSocketError",
    "__version__",
    "allow_global",
    "guard",
]
