"""Objects that open resources lazily: a resource they open is told as made where they were.

A ``requests.Session()`` made per call opens its socket at ``session.get(...)``, and a
``ThreadPoolExecutor()`` its threads at ``submit``: the line to fix is where the object was
made, not where it was first used. Each class here has its ``__init__`` wrapped, once its
module is imported, to remember that line and the invocation that made it (none, for one made
at import: a module-level client's pool is reuse, not a leak).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._scope import register_owner, reporting_fault, watch_owner_class

__all__ = ["OWNERS", "attach_module"]

# module -> (class name, how a report names it)
OWNERS: dict[str, tuple[tuple[str, str], ...]] = {
    "concurrent.futures.thread": (("ThreadPoolExecutor", "concurrent.futures.ThreadPoolExecutor"),),
    "requests.sessions": (("Session", "requests.Session"),),
    "httpx._client": (("Client", "httpx.Client"), ("AsyncClient", "httpx.AsyncClient")),
    "redis.client": (("Redis", "redis.Redis"),),
    "redis.connection": (("ConnectionPool", "redis.ConnectionPool"),),
    "urllib3.poolmanager": (("PoolManager", "urllib3.PoolManager"),),
    "botocore.client": (("BaseClient", "a boto3 client"),),
    "aiohttp.client": (("ClientSession", "aiohttp.ClientSession"),),
    "psycopg_pool.pool": (("ConnectionPool", "psycopg_pool.ConnectionPool"),),
    # a Session opens its connection at its first query: the line to fix is where it was made
    # (``db = SessionLocal()`` in a FastAPI dependency), and the DB handle is told so too
    "sqlalchemy.orm.session": (("Session", "sqlalchemy.orm.Session"),),
}


def attach_module(module: ModuleType) -> None:
    for class_name, kind in OWNERS.get(module.__name__, ()):
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            _wrap(cls, kind)


def _wrap(cls: type, kind: str) -> None:
    original: Callable[..., None] = cls.__init__  # type: ignore[misc]
    if getattr(original, "__safehandler__", False):
        return
    watch_owner_class(cls, kind)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        try:
            register_owner(self, kind, sys._getframe(1))
        except Exception as exc:  # noqa: BLE001 - the user's object is made: keep it
            reporting_fault(kind, exc)

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]
