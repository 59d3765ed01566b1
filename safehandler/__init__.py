"""safehandler: keep long-lived serverless handlers healthy.

Importing this module imports neither sqlalchemy, pymysql nor Powertools: cold starts pay for
every import.
"""

from __future__ import annotations

from .config import Policy
from .errors import (
    ConfigError,
    GlobalMutationError,
    LeakedConnectionError,
    LeakedThreadError,
    LeakError,
    MemoryGrowthError,
    SafeHandlerError,
    UnclosedFdError,
    UnclosedSocketError,
)
from .guard import guard
from .probes.globals import allow_global
from .report import Finding

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Finding",
    "GlobalMutationError",
    "LeakError",
    "LeakedConnectionError",
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
