"""Objects that open resources lazily: a resource they open is told as made where they were.

A ``requests.Session()`` made per call opens its socket at ``session.get(...)``, and a
``ThreadPoolExecutor()`` its threads at ``submit``: the line to fix is where the object was
made, not where it was first used. Each class here has its ``__init__`` wrapped, once its
module is imported, to remember that line and the invocation that made it (none, for one made
at import: a module-level client's pool is reuse, not a leak). It is remembered before the
object's own ``__init__`` runs, so what that opens (an event loop's epoll and self-pipe) is the
object's too.

An event loop's fds are one resource of it (``bundles``): an unclosed loop per call is one
finding at the ``new_event_loop()`` line, not one for its epoll and another for its sockets.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import ModuleType

from .._scope import record_fds, register_owner, reporting_fault, watch_owner_class

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

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
    "asyncio.selector_events": (("BaseSelectorEventLoop", "asyncio event loop"),),
    # a Session opens its connection at its first query: the line to fix is where it was made
    # (``db = SessionLocal()`` in a FastAPI dependency), and the DB handle is told so too
    "sqlalchemy.orm.session": (("Session", "sqlalchemy.orm.Session"),),
}


# owners whose fds are one resource of theirs
BUNDLED = frozenset({"asyncio event loop"})


def _selector_fd(loop: Any) -> tuple[tuple[int, ...], str] | None:
    """The loop's epoll, made by ``select.epoll``, which no audit event tells."""
    fileno = getattr(getattr(loop, "_selector", None), "fileno", None)
    return ((fileno(),), "anon_inode:") if fileno is not None else None


# after the owner's __init__: fds it made that no audit event told, and their /proc prefix
_MADE_IN_INIT: dict[str, Callable[[Any], tuple[tuple[int, ...], str] | None]] = {
    "asyncio event loop": _selector_fd,
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
    bundles = kind in BUNDLED
    made_in_init = _MADE_IN_INIT.get(kind)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        frame = sys._getframe(1)
        try:
            register_owner(self, kind, frame, bundles=bundles)
            registered = True
        except Exception:  # noqa: BLE001 - a hash that needs the object's state: after it
            registered = False
        original(self, *args, **kwargs)
        if not registered:
            try:
                register_owner(self, kind, frame, bundles=bundles)
            except Exception as exc:  # noqa: BLE001 - the user's object is made: keep it
                reporting_fault(kind, exc)
        if made_in_init is not None:
            try:
                made = made_in_init(self)
                if made is not None:
                    record_fds(*made, sys._getframe(0))
            except Exception as exc:  # noqa: BLE001 - the user's object is made: keep it
                reporting_fault(kind, exc)

    __init__.__safehandler__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]
