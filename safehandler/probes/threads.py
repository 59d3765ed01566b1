"""Threads started during an invocation and still alive at its end.

Lambda freezes the environment between invocations: a thread that outlives its invocation
resumes, at random, inside a later one. Daemon threads are not exempt. A thread that finishes
within the grace period is not a leak.

Parked is not running. A thread blocked waiting for work with no timeout (an idle worker of an
executor, a consumer on an empty queue) will not wake by itself: it is an *idle thread*,
counted like any resource (a per-call executor grows them). A thread that will wake by itself
(a timer, a sleeper, a poll loop) is background work that resumes inside a later invocation.
Both get the grace period: a parked worker may have its stop queued already (AnyIO stops the
worker of each request as the request ends). A site whose thread outlived the grace is not
waited for again, until one of its threads turns out to have been only slow.
A thread an object opened lazily (an executor's worker) is told as made where the object was
made; one opened by an object made before this invocation (a module-level executor) is that
object's, not this invocation's.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType

from .._records import NO_CHANGE, Creation, Delta, Resource
from .._scope import Scope
from ._protocol import Probe

__all__ = ["ThreadProbe", "describe_thread", "parked"]


def describe_thread(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    if target is not None:
        target_name = getattr(target, "__qualname__", None) or repr(target)
    else:
        target_name = f"{type(thread).__qualname__}.run"
    flag = "daemon" if thread.daemon else "non-daemon"
    return f"named {thread.name!r} ({flag}, target={target_name}) still running"


_CONDITION_WAIT = threading.Condition.wait.__code__


def parked(frame: FrameType | None) -> bool:
    """Whether a thread at ``frame`` (its innermost) waits for work with no timeout."""
    if frame is None:
        return False
    code = frame.f_code
    if code is _CONDITION_WAIT:  # Event.wait(), Queue.get(), Condition.wait() ...
        return frame.f_locals.get("timeout") is None  # ... with a timeout, it wakes by itself
    # an executor's worker between tasks, blocked on its work queue
    return code.co_name == "_worker" and frame.f_globals.get("__name__") == (
        "concurrent.futures.thread"
    )


# what is left of the invocation after the grace period: time to post the response
_DEADLINE_MARGIN = 0.05

_ACTIVE: object = getattr(threading, "_active", None)
_LIMBO: object = getattr(threading, "_limbo", None)


def _count_unlocked() -> int:
    # threading.active_count() without its lock: two len() calls are atomic under the GIL
    return len(_ACTIVE) + len(_LIMBO)  # type: ignore[arg-type]


_active_count = (
    _count_unlocked
    if isinstance(_ACTIVE, dict) and isinstance(_LIMBO, dict)
    else threading.active_count
)


class ThreadProbe(Probe):
    name = "threads"
    stat = "threads"

    def __init__(self, grace_ms: float, allow: Iterable[str] = ()) -> None:
        self.grace = grace_ms / 1000
        patterns = list(allow)
        self._allowed = None
        if patterns:  # (re: 3 ms of cold start, for allow patterns only)
            import fnmatch
            import re

            self._allowed = re.compile("|".join(map(fnmatch.translate, patterns))).match
        # threads started by invocations and still alive: id -> (weakref to thread, record)
        self.retained: dict[int, tuple[object, Resource]] = {}
        # Sites whose threads already outlived the grace period: not waited for again, so a
        # thread leaked per invocation costs the grace once, not on every invocation.
        self.proven: set[object] = set()

    @property
    def holding(self) -> bool:
        return bool(self.retained)

    # the count itself, not a method around it: one frame less per invocation
    snapshot = staticmethod(_active_count)

    def diff(self, before: int | None, after: int, scope: Scope, invocation: int) -> Delta:
        removed = self._prune() if self.retained else []
        started = [
            c
            for c in scope.creations
            if c.kind == "thread"
            and not self._allow(c)
            # an object made before this invocation (a module-level executor) owns its threads
            and (c.owner is None or c.owner.serial == scope.serial)
        ]
        if not started:
            return Delta([], removed) if removed else NO_CHANGE
        alive = [(c, t) for c in started if (t := c.ref()) is not None and t.is_alive()]
        # A parked thread is waited for too: its stop may be queued already (AnyIO stops the
        # worker of each request when the request's task ends, and it wakes a moment later).
        waiting = [t for c, t in alive if c.attributed_site not in self.proven]
        grace = self.grace
        remaining = scope.remaining()
        if remaining is not None:  # never wait past the invocation's own deadline
            grace = min(grace, max(0.0, remaining - _DEADLINE_MARGIN))
        if waiting and grace:
            deadline = time.monotonic() + grace
            for thread in waiting:
                thread.join(max(0.0, deadline - time.monotonic()))
            alive = [(c, t) for c, t in alive if t.is_alive()]
        frames = sys._current_frames() if alive else {}
        self.proven.update(c.attributed_site for c, _ in alive)
        added = []
        for creation, thread in alive:
            res = self._resource(creation, thread, parked(frames.get(thread.ident)), invocation)
            self.retained[id(thread)] = (creation.ref, res)
            added.append(res)
        return Delta(added, removed)

    @staticmethod
    def _resource(
        creation: Creation, thread: threading.Thread, idle: bool, invocation: int
    ) -> Resource:
        owner = creation.owner
        if owner is not None:  # one finding per owner's site, not a line per thread
            state = "waiting for work" if idle else "still running"
            detail = f"of {owner.kind} objects, {state}"
        else:
            detail = describe_thread(thread)
            if idle:
                detail = detail.replace("still running", "waiting for work with no timeout")
        noun = "idle thread" if idle else "thread"
        return Resource("thread", id(thread), noun, detail, creation.attributed_site, invocation)

    def _allow(self, creation: Creation) -> bool:
        """Known-good threads, by name or by the module of their target or creation site."""
        thread = creation.ref()
        if self._allowed is None or thread is None:
            return False
        target = getattr(thread, "_target", None)
        names = [thread.name, getattr(target, "__module__", None) or type(thread).__module__]
        if creation.site is not None:
            names.append(creation.site.filename)
        return any(self._allowed(name) for name in names)

    def _prune(self) -> list[Resource]:
        gone = [
            key
            for key, (ref, _) in self.retained.items()
            if (thread := ref()) is None or not thread.is_alive()  # type: ignore[operator]
        ]
        removed = [self.retained.pop(key)[1] for key in gone]
        # A site whose thread was only slow to finish (it is gone by the next invocation) is
        # waited for again: one slow exit must not make every later thread of it a finding.
        self.proven.difference_update(res.site for res in removed)
        return removed
