"""Event adapters: whatever a caller gives as ``events``, one labelled event per invocation.

A label names the event in a finding's path ("only for events #3, #7"), so it says where the
event came from: its position in a list or directory, a Hypothesis example, a call.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import TargetError
from ._targets import load_events

__all__ = ["Prelabelled", "labelled"]


class Prelabelled(list):  # type: ignore[type-arg]
    """``(label, event)`` pairs already drawn, in order (an isolated soak's child replays
    what its parent drew): used as they are, once."""


def labelled(events: Any, invocations: int, seed: int | None) -> Iterator[tuple[str, Any]]:
    """``(label, event)`` per invocation from whatever the caller gave.

    A path (file or directory of JSON files), a list (cycled), a Hypothesis strategy (up to
    200 distinct examples, cycled), a callable (called per invocation), an iterator (consumed),
    or a single event (repeated; default ``{}``).
    """
    if isinstance(events, Prelabelled):
        return iter(events)
    pairs = _finite(events, invocations, seed)
    if pairs is not None:
        return _cycle(pairs, seed)
    if callable(events):
        return ((f"call {n}", events()) for n in _count())
    if isinstance(events, Iterator):
        return ((f"#{n}", event) for n, event in enumerate(events))
    single = {} if events is None else events
    return (("event", single) for _ in _count())


def _finite(events: Any, invocations: int, seed: int | None) -> list[tuple[str, Any]] | None:
    """The labelled events of a kind that is cycled: a path, a strategy, a list."""
    if isinstance(events, (str, os.PathLike)):
        return load_events(events)
    if _is_strategy(events):
        return _draw(events, min(invocations, 200), seed)
    if isinstance(events, (list, tuple)):
        if not events:
            raise TargetError("no events to soak with")
        return [(f"#{n}", event) for n, event in enumerate(events)]
    return None


def _count() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def _cycle(pairs: list[tuple[str, Any]], seed: int | None) -> Iterator[tuple[str, Any]]:
    if seed is not None:
        pairs = list(pairs)
        random.Random(seed).shuffle(pairs)  # noqa: S311 - an order, not a secret
    while True:
        yield from pairs


def _is_strategy(obj: object) -> bool:
    hypothesis = sys.modules.get("hypothesis.strategies")
    return hypothesis is not None and isinstance(obj, hypothesis.SearchStrategy)


def _draw(strategy: Any, count: int, seed: int | None) -> list[tuple[str, Any]]:
    """Examples through Hypothesis's public API: a @given run that only collects."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    drawn: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(event: Any) -> None:
        drawn.append(event)

    if seed is not None:
        collect = hypothesis_seed(seed)(collect)
    collect()
    return [(f"example {n}", event) for n, event in enumerate(drawn)]
