"""Driver integrations, attached only once the user's code has imported the driver.

Each patches at class level (``Connection.__init__``, ``Engine.__init__``) or listens to the
library's own events, so it sees every object created after it attached, however the user
imported the name. Nothing here is imported by ``import safehandler``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

from .._constants import LOGGER_NAME
from .._imports import when_imported

__all__ = ["attach_all"]

_attached = False


def _safely(attach: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
    def run(module: ModuleType) -> None:
        try:
            attach(module)
        except Exception as exc:  # noqa: BLE001 - fail open: the user's import must succeed
            logging.getLogger(LOGGER_NAME).warning(
                "safehandler: cannot watch %s (%r); its connections go untracked",
                module.__name__,
                exc,
            )

    return run


def attach_all() -> None:
    global _attached  # noqa: PLW0603 - attach once per process
    if _attached:
        return
    _attached = True
    from . import pymysql, sqlalchemy

    when_imported("pymysql.connections", _safely(pymysql.attach))
    # the packages, not the modules that define the classes: once a package has loaded, its
    # event system is whole (a hook on sqlalchemy.engine.base ran while sqlalchemy.event was
    # half loaded, and failed)
    when_imported("sqlalchemy", _safely(sqlalchemy.attach_core))
    when_imported("sqlalchemy.orm", _safely(sqlalchemy.attach_orm))
