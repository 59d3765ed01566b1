"""The events a local Runtime API serves, in order: given, added, and put back if undelivered.

Not locked on its own: ``LocalRuntimeAPI`` calls it with its condition held, and wakes the
``next`` requests waiting on that condition itself.
"""

from __future__ import annotations

import itertools
import json
import queue
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from ._records import RuntimeEvent

__all__ = ["EventFeed", "encode"]

_NOTHING: Any = object()


class EventFeed:
    """``events``: an iterable (consumed lazily: a generator may be endless) or a
    ``queue.Queue`` (read as events arrive). ``finished``: no event will be added.
    Events that cannot be encoded, and a generator's failure, are appended to ``errors``."""

    def __init__(
        self,
        events: Iterable[Any] | queue.Queue[Any] | None,
        *,
        finished: bool,
        errors: list[BaseException],
    ) -> None:
        self._queue: queue.Queue[Any] | None = None
        self._source: Iterator[Any] | None = None
        if isinstance(events, queue.Queue):
            self._queue = events
        elif events is not None:
            self._source = iter(events)
        self._added: deque[Any] = deque()
        self._retry: deque[tuple[int, Any]] = deque()  # taken, never delivered: serve again
        self.finished = finished
        self._index = itertools.count()
        self._errors = errors

    def add(self, event: Any) -> None:
        if self.finished:
            raise RuntimeError("events are closed (close_when_done or finish_events())")
        if self._queue is not None:
            self._queue.put(event)
        else:
            self._added.append(event)

    def finish(self) -> None:
        self.finished = True

    def has_event(self) -> bool:
        if self._retry or self._added:
            return True
        if self._queue is not None:
            return not self._queue.empty()
        return self._source is not None  # unknown until pulled: an iterator may have more

    def take(self) -> tuple[int, Any, bytes] | None:
        """The next event as (index in the stream, event, body); None when there is none."""
        while True:
            if self._retry:
                index, event = self._retry.popleft()
            else:
                event = self._pull()
                if event is _NOTHING:
                    return None
                index = next(self._index)
            try:
                return index, event, encode(event)
            except (TypeError, ValueError) as e:  # skipped; reported in ``errors``
                self._errors.append(e)

    def put_back(self, index: int, event: Any) -> None:
        """Serve a taken event again, first: the runtime went away before it got it."""
        self._retry.appendleft((index, event))

    def _pull(self) -> Any:
        if self._source is not None:
            try:
                return next(self._source)
            except StopIteration:
                self._source = None
            except Exception as e:  # noqa: BLE001 - a failing generator ends its stream
                self._errors.append(e)
                self._source = None
        if self._added:
            return self._added.popleft()
        if self._queue is not None:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                pass
        return _NOTHING


def encode(event: Any) -> bytes:
    """The body of ``next`` for an event: bytes as they are, anything else as JSON."""
    payload = event.payload if isinstance(event, RuntimeEvent) else event
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return json.dumps(payload).encode()
