"""The line that changed global state, found by following the handler's code line by line.

A change to global state is seen after the invocation that made it, when no frame of it is
left to name. So the state is split into *parts* (a namespace, ``os.environ``, ``sys.path``,
the loggers, the working directory, the signal handlers), each with a *glance* (a list of
what is in it, compared by identity, so that comparing runs no user code) and a *reading* (a
dict from the names in it to identities, sizes or strings, taken only when the glance moved).
While a part is watched, a trace function follows the frames of user code, and at each of
their line, return and exception events glances at the watched parts again. When a glance
moved, the line the frame last began made the move (a library called from it, such as
``logging.basicConfig()``, included): the witness records the *move*, with its line (and the
handler line that called it, when it is a helper) and the readings before and after, so that
the probe can tell which names it changed.

What is watched, and for how long, is the probe's to say (a change without a line: its part,
for the next few invocations; in strict tests and soaks, every part from the first
invocation). The cost is bounded: at most ``CHECKS`` checks per traced invocation, after which
the witness stands aside until the next.

Tracing takes the thread's trace function for those invocations: another one (a debugger,
coverage) is chained, called first for every event as it would have been, and put back after.
If something else replaces the trace function meanwhile, it is left alone. A trace function
that finds no invocation running (the guard was switched off before the invocation's end)
puts the other back itself.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import FrameType

from ... import _scope
from ..._records import Site
from ..._sites import is_user_code, line_site

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    _Trace = Callable[[FrameType, str, Any], Any]
else:
    from ..._tuple import NamedTuple

__all__ = ["CHECKS", "Move", "View", "Witness", "changed_at"]

CHECKS = 2_000  # checks per traced invocation, at most
MOVES = 16  # moves kept per part and invocation


class View(NamedTuple):
    """How the witness looks at a part of the global state."""

    reading: Callable[[], Mapping[Any, Any]]  # name -> identity, size or string
    # compared by identity, item by item, before a reading is taken (None: read every time,
    # for a small part whose sizes count)
    glance: Callable[[], Sequence[Any]] | None = None


class Move(NamedTuple):
    """A part of the state moved while a line of user code ran."""

    site: Site
    before: Mapping[Any, Any]
    after: Mapping[Any, Any]


class Witness:
    """The parts watched, for how many more invocations, and the moves of the last one."""

    def __init__(self) -> None:
        self.moves: dict[Hashable, list[Move]] = {}  # the last traced invocation's
        self._parts: dict[Hashable, View] = {}
        self._left: dict[Hashable, int] = {}  # traced invocations left, per part
        self._glances: dict[Hashable, Sequence[Any]] = {}  # at the last event
        self._readings: dict[Hashable, Mapping[Any, Any]] = {}  # at the last move
        self._checks = 0
        self._tracer: _Trace | None = None  # ours, while installed
        self._other: Any = None  # the trace function ours chains to
        # anything watched or traced: an attribute, since the probe asks on every invocation
        self.active = False

    def watch(self, name: Hashable, part: View, invocations: int) -> None:
        """Follow ``part`` through the next ``invocations`` invocations (or more, if it is
        already watched for more)."""
        self._parts[name] = part
        self._left[name] = max(self._left.get(name, 0), invocations)
        self.active = True

    def begin(self) -> None:
        """Before an invocation: read the parts watched, and trace the frames of user code."""
        self.moves = {}
        if not self._parts or self._tracer is not None:
            return
        try:
            self._glances = {
                name: part.glance() for name, part in self._parts.items() if part.glance
            }
            self._readings = {name: part.reading() for name, part in self._parts.items()}
        except Exception:  # noqa: BLE001 - fail open: watch nothing
            self._parts.clear()
            self._left.clear()
            self.active = False
            return
        self._checks = 0
        self._other = sys.gettrace()
        self._tracer = self._tracing(self._other)
        sys.settrace(self._tracer)

    def end(self) -> None:
        """After an invocation: stop tracing; keep its moves for the probe's diff."""
        if self._tracer is None:
            self.moves = {}
            self.active = bool(self._parts)
            return
        if sys.gettrace() is self._tracer:  # (replaced meanwhile: not ours to undo)
            sys.settrace(self._other)
        self._tracer = self._other = None
        self._glances, self._readings = {}, {}
        for name in list(self._parts):
            self._left[name] -= 1
            if self._left[name] <= 0:
                del self._parts[name], self._left[name]
        self.active = bool(self._parts)

    # -- tracing ------------------------------------------------------------------------

    def _tracing(self, other: _Trace | None) -> _Trace:
        check = self._check

        def on_call(frame: FrameType, event: str, arg: Any) -> Any:
            theirs = None
            if other is not None:
                theirs = other(frame, event, arg)
                # coverage's C tracer, called from Python on a call, installs itself again
                # in C (its speed-up): take the thread's trace function back from it (not
                # from a third one the handler set meanwhile)
                if sys.gettrace() is other:
                    sys.settrace(tracer)
            try:
                if _scope.current() is None:
                    # no invocation runs (its end was not seen: a guard switched off in
                    # between): stand down rather than trace what follows
                    if sys.gettrace() is tracer:
                        sys.settrace(other)
                    return theirs
                if not is_user_code(frame.f_code.co_filename):
                    return theirs
            except Exception:  # noqa: BLE001 - fail open (at interpreter exit, say)
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

        tracer: _Trace = on_call
        return tracer

    def _check(self, frame: FrameType, began: int | None) -> None:
        # an event of user code: has any part watched moved since the last event?
        try:
            self._checks += 1
            if self._checks > CHECKS:
                return
            for name, part in self._parts.items():
                if part.glance is not None:
                    glance, was = part.glance(), self._glances[name]
                    if len(glance) == len(was) and not any(map(operator.is_not, glance, was)):
                        continue
                    self._glances[name] = glance
                before, after = self._readings[name], part.reading()
                if after == before:  # (identities, sizes, strings: no user code)
                    continue
                self._readings[name] = after
                moves = self.moves.setdefault(name, [])
                if len(moves) < MOVES:
                    moves.append(Move(_site(frame, began), before, after))
        except Exception:  # noqa: BLE001,S110 - a trace function that raises is unset, and
            pass  # its exception raised in the handler: never


def changed_at(moves: list[Move], name: Any) -> Site | None:
    """The line of the last move that changed ``name``'s reading, if one did."""
    missing = object()
    for move in reversed(moves):
        if move.before.get(name, missing) != move.after.get(name, missing):
            site: Site = move.site
            return site
    return None


def _site(frame: FrameType, began: int | None) -> Site:
    """The line ``frame`` last began; before its first line, the line that called it."""
    caller = frame.f_back
    if began is None and caller is not None and is_user_code(caller.f_code.co_filename):
        return line_site(caller, caller.f_lineno)
    return line_site(frame, began if began is not None else frame.f_lineno)
