"""Database connections: what the drivers opened during an invocation and left open.

The integrations (``safehandler.integrations``) register each connection, pool checkout,
Session transaction and engine created while an invocation runs as a ``Handle`` in the scope:
what it is, where it points (password redacted), where it was created, and how to tell it is
still open and how to clean it up. This probe turns the ones still open at the end into
resources, and carries out the cleanup the verdict allows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._constants import LOGGER_NAME
from .._records import NO_CHANGE, Creation, Delta, Handle, Resource
from .._redact import redact
from .._scope import registry
from ._protocol import Probe

if TYPE_CHECKING:
    from ..verdicts import Verdict

__all__ = ["DbProbe"]

_log = logging.getLogger(LOGGER_NAME)


class DbProbe(Probe):
    name = "db"
    stat = "db"

    def __init__(self) -> None:
        self.retained: dict[int, tuple[Handle, Resource]] = {}

    @property
    def holding(self) -> bool:
        return bool(self.retained)

    def snapshot(self) -> int:
        return registry.created

    def reading(self, snapshot: int) -> int:
        return len(self.retained)

    def diff(
        self, before: int | None, after: int, creations: Sequence[Creation], invocation: int
    ) -> Delta:
        if after == before and not self.retained:
            return NO_CHANGE
        removed = []
        for key, (handle, res) in list(self.retained.items()):
            if handle.alive() is None:  # closed since, by the handler or the garbage collector
                del self.retained[key]
                removed.append(res)
        if not invocation:
            return Delta([], removed)  # between invocations nothing is recorded
        added = []
        for handle in registry.take() if after != before else ():
            if handle.alive() is None:
                continue
            handle.invocation = invocation
            res = Resource(
                "db_connection", id(handle), handle.noun, handle.detail, handle.site, invocation
            )
            self.retained[id(handle)] = (handle, res)
            added.append(res)
        return Delta(added, removed)

    def act(self, verdict: Verdict) -> list[Resource]:
        """Roll back open transactions; close what the verdict says. Returns what is gone."""
        if not verdict.rolls_back or not self.retained:
            return []
        closed = []
        for key, (handle, res) in list(self.retained.items()):
            obj = handle.alive()
            if obj is None:
                continue
            try:
                if verdict.closes(res):
                    handle.close(obj)
                    del self.retained[key]
                    closed.append(res)
                elif handle.rollback is not None and handle.rollback(obj) and not handle.alive():
                    del self.retained[key]  # a Session's transaction was all it held
                    closed.append(res)
            except Exception as exc:  # noqa: BLE001 - cleanup must never fail the invocation
                _log.warning(
                    "safehandler: cleaning up %s %s failed: %s",
                    handle.noun,
                    handle.detail,
                    redact(repr(exc)),
                )
        return closed
