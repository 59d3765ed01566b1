"""Driver integrations, attached only once the user's code has imported the driver.

Each patches at class level (``Connection.__init__``, ``Engine.__init__``) or listens to the
library's own events, so it sees every object created after it attached, however the user
imported the name. Nothing here is imported by ``import safehandler``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from .._imports import when_imported
from .._warn import warn

__all__ = ["attach_all"]

_attached: set[str] = set()


def _safely(attach: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    def run(module: ModuleType) -> None:
        try:
            attach(module)
        except Exception as exc:  # noqa: BLE001 - fail open: the user's import must succeed
            warn(
                "safehandler: cannot watch %s (%r); what it opens goes unattributed",
                module.__name__,
                exc,
            )

    return run


def attach_all(*, drivers: bool) -> None:
    """The owners (clients, sessions, executors) always; the database drivers if asked."""
    from . import owners

    if "owners" not in _attached:
        _attached.add("owners")
        for module_name in owners.OWNERS:
            when_imported(module_name, _safely(owners.attach_module))
    if drivers and "drivers" not in _attached:
        _attached.add("drivers")
        from . import psycopg, pymysql, sqlalchemy

        when_imported("pymysql.connections", _safely(pymysql.attach))
        when_imported("psycopg", _safely(psycopg.attach_psycopg))
        when_imported("psycopg2", _safely(psycopg.attach_psycopg2))
        # the packages, not the modules that define the classes: once a package has loaded,
        # its event system is whole (a hook on sqlalchemy.engine.base ran while
        # sqlalchemy.event was half loaded, and failed)
        when_imported("sqlalchemy", _safely(sqlalchemy.attach_core))
        when_imported("sqlalchemy.orm", _safely(sqlalchemy.attach_orm))
