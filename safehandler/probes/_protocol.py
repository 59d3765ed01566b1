"""One probe per resource, all behind one protocol: the engine knows no probe by name.

Per invocation the engine calls, for every probe:

- ``snapshot()`` after the invocation, and before it when ``counts_before`` (a probe whose
  state ``carries_over`` is not read again before: its state after one invocation is its
  state before the next). It must cost a counter read.
- ``diff(before, after, scope, invocation)`` only when the snapshot moved, the invocation's
  scope recorded something, or the probe is ``holding`` resources that may go away unseen.
  It returns the resources that appeared (still there at the end) and those that went away.
  Process-wide counters are shared by concurrent invocations: when the scope ``overlapped``
  another invocation, a probe reports only what the scope explains. With
  ``invocation == 0`` the change happened between invocations (the scope is ``IDLE``): what
  appeared is baseline, nobody's doing.
- ``catch_up(last)`` before the invocation, for a probe whose state ``carries_over``: its
  state after the last invocation, or what it became since (a caller's change between
  invocations is nobody's doing: it must not count as the next invocation's). Never raises.
- ``act(verdict)`` after the verdict, when the probe saw something or is holding: the
  irreversible actions the verdict allows (roll back and close a connection, put a global
  back). It returns the resources it released.
- ``reading(snapshot)``: the figure it contributes to ``InvocationStats.<stat>``.

Probes know no driver (the integrations register database handles into the scope) and make
no judgement (the verdict says what is a leak and what may be acted on).
"""

from __future__ import annotations

from .._records import Delta, Resource

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

    from .._scope import Scope
    from ..verdicts import Verdict

__all__ = ["Probe"]


class Probe:
    """The protocol, with the defaults most probes want."""

    name: str = ""
    stat: str | None = None  # the InvocationStats field reading() fills
    counts_before = True  # whether a snapshot before the invocation is needed at all
    carries_over = False  # the state after one invocation is the state before the next

    @property
    def holding(self) -> bool:
        """Holds resources that may go away unseen: diff() runs on every invocation."""
        return False

    def snapshot(self) -> Any:
        raise NotImplementedError

    def diff(self, before: Any, after: Any, scope: Scope, invocation: int) -> Delta:
        raise NotImplementedError

    def catch_up(self, last: Any) -> Any:
        return last

    def act(self, verdict: Verdict) -> list[Resource]:
        return []

    def reading(self, snapshot: Any) -> int | None:
        return snapshot if isinstance(snapshot, int) else None
