"""The line that changed global state, found by watching the next invocations line by line.

A change to global state is seen after the invocation that made it, when no frame of it is
left to name. When a change comes without a site, the group it belongs to is *watched*: for
the next invocations (at most ``ATTEMPTS`` of them per group, at most ``GROUPS`` groups in a
probe's life, so that the cost stays bounded in production), a trace function follows the
frames of user code, and at each of their line, return and exception events reads the
group's state again (a cheap read of that one thing: a namespace entry, an environment
variable, a logger's handlers). When the reading moved, the line the frame last began made
the change (a library called from it, ``logging.basicConfig()``, included): that line, with
the handler line that called it when it is a helper, is the group's site from then on.

A change that does not happen again (set once) is not seen this way: its finding says so.

Tracing takes the thread's trace function for those invocations: another one (a debugger,
coverage) is chained, called first for every event as it would have been, and put back
after. If something else replaces the trace function meanwhile, it is left alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from types import FrameType
from typing import Any

from ..._records import Site
from ..._sites import is_user_code, line_site

__all__ = ["ATTEMPTS", "GROUPS", "Witness"]

ATTEMPTS = 3  # traced invocations per group before giving up on it
GROUPS = 32  # groups ever watched by one probe

Read = Callable[[], Any]  # a reading compared with ==: identities, sizes, strings
_Trace = Callable[[FrameType, str, Any], Any]


class Witness:
    """Groups of global state whose changing line is sought, and the lines found."""

    def __init__(self) -> None:
        self.sites: dict[Hashable, Site] = {}  # group -> the line that changed it
        self._reads: dict[Hashable, Read] = {}  # groups still sought
        self._attempts: dict[Hashable, int] = {}
        self._last: dict[Hashable, Hashable] = {}  # the reading at the last event
        self._tracer: _Trace | None = None  # ours, while installed
        self._other: Any = None  # the trace function ours chains to

    @property
    def active(self) -> bool:
        """Whether anything is sought or traced (the probe asks on every invocation)."""
        return bool(self._reads) or self._tracer is not None

    def watch(self, group: Hashable, read: Read) -> None:
        """Seek the line that changes ``group``, in the next invocations (bounded)."""
        if group in self.sites or group in self._reads or len(self._attempts) >= GROUPS:
            return
        self._attempts[group] = 0
        self._reads[group] = read

    def begin(self) -> None:
        """Before an invocation: read what is sought, and trace the frames of user code."""
        if not self._reads or self._tracer is not None:
            return
        try:
            self._last = {group: read() for group, read in self._reads.items()}
        except Exception:  # noqa: BLE001 - fail open: seek nothing
            self._reads.clear()
            return
        self._other = sys.gettrace()
        self._tracer = self._tracing(self._other)
        sys.settrace(self._tracer)

    def end(self) -> None:
        """After an invocation: stop tracing; a group not found in ``ATTEMPTS`` is let go."""
        if self._tracer is None:
            return
        if sys.gettrace() is self._tracer:  # (replaced meanwhile: not ours to undo)
            sys.settrace(self._other)
        self._tracer = self._other = None
        for group in list(self._reads):
            self._attempts[group] += 1
            if group in self.sites or self._attempts[group] >= ATTEMPTS:
                del self._reads[group]

    # -- tracing ------------------------------------------------------------------------

    def _tracing(self, other: _Trace | None) -> _Trace:
        check = self._check

        def on_call(frame: FrameType, event: str, arg: Any) -> Any:
            theirs = other(frame, event, arg) if other is not None else None
            if not is_user_code(frame.f_code.co_filename):
                return theirs
            began: int | None = None  # the line this frame last began

            def on_event(frame: FrameType, event: str, arg: Any) -> Any:
                nonlocal theirs, began
                if theirs is not None:
                    theirs = theirs(frame, event, arg)
                check(frame, began)
                began = frame.f_lineno
                return on_event

            return on_event

        return on_call

    def _check(self, frame: FrameType, began: int | None) -> None:
        # an event of user code: has anything sought moved since the last event?
        try:
            for group, read in self._reads.items():
                now = read()
                if now == self._last[group]:
                    continue
                self._last[group] = now
                if group not in self.sites:
                    self.sites[group] = _site(frame, began)
        except Exception:  # noqa: BLE001,S110 - a trace function that raises is unset, and
            pass  # its exception raised in the handler: never


def _site(frame: FrameType, began: int | None) -> Site:
    """The line ``frame`` last began; before its first line, the line that called it."""
    if began is None and frame.f_back is not None and is_user_code(frame.f_back.f_code.co_filename):
        return line_site(frame.f_back, frame.f_back.f_lineno)
    return line_site(frame, began if began is not None else frame.f_lineno)
