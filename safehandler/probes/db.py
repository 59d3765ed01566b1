"""Database connections: what the drivers opened during an invocation and left open.

The integrations (``safehandler.integrations``) register each connection, pool checkout,
Session transaction and engine created while an invocation runs as a ``Handle`` in the scope:
what it is, where it points (password redacted), where it was created, and how to tell it is
still open and how to clean it up. This probe turns the ones still open at the end into
resources, and carries out the cleanup the verdict allows.
"""

from __future__ import annotations

from .._records import NO_CHANGE, Delta, Handle, Resource
from .._scope import Scope, handles_added, live_serials
from .._warn import warn
from ._protocol import Probe

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from ..verdicts import Verdict

__all__ = ["DbProbe"]


class DbProbe(Probe):
    name = "db"
    stat = "db"

    def __init__(self) -> None:
        self.retained: dict[int, tuple[Handle, Resource]] = {}
        # creation sites one of whose connections was used again: a cache or a pool, whose
        # connections are never closed by the leak cleanup
        self.cache_like: set[object] = set()

    @property
    def holding(self) -> bool:
        return bool(self.retained)

    # the counter itself, not a method around it: one frame less per invocation
    snapshot = staticmethod(handles_added)

    def reading(self, snapshot: int) -> int:
        return len(self.retained)

    def diff(self, before: int | None, after: int, scope: Scope, invocation: int) -> Delta:
        if after == before and not self.retained and not scope.handles:
            return NO_CHANGE
        removed = []
        for key, (handle, res) in list(self.retained.items()):
            if handle.used_again:
                self.cache_like.add(res.group)
            if handle.alive() is None:  # closed since, by the handler or the garbage collector
                del self.retained[key]
                removed.append(res)
        if not invocation:
            return Delta([], removed)  # between invocations nothing is recorded
        added = []
        for handle in scope.take_handles():
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
        """Roll back what this invocation left in a transaction; close what the verdict says,
        never what another live invocation may be using. Returns what is gone."""
        if not self.retained:
            return []
        live = live_serials()
        closed = []
        for key, (handle, res) in list(self.retained.items()):
            obj = handle.alive()
            if obj is None:
                continue
            in_use = handle.last_used in live or (bool(live) and not handle.tracks_use)
            try:
                if verdict.closes(
                    res, handle, in_use=in_use, cache_like=res.group in self.cache_like
                ):
                    handle.close(obj)
                    del self.retained[key]
                    closed.append(res)
                elif (
                    handle.rollback is not None
                    and verdict.rolls_back(handle)
                    and handle.rollback(obj)
                    and not handle.alive()
                ):
                    del self.retained[key]  # a Session's transaction was all it held
                    closed.append(res)
            except Exception as exc:  # noqa: BLE001 - cleanup must never fail the invocation
                warn("safehandler: cleaning up %s %s failed: %r", handle.noun, handle.detail, exc)
        return closed
