"""The rotation on its own: a state dealt into balanced slices, each read on its turn."""

from __future__ import annotations

import itertools

from safehandler.probes._rotation import Rotation


def test_the_largest_go_first_each_to_the_lightest_slice() -> None:
    big, medium, small = list(range(90)), list(range(50)), list(range(40))
    rotation = Rotation(2)
    rotation.deal("v1", [small, big, medium], [(5, lambda: "cwd")])
    sizes = sorted(sum(map(len, part.sources)) for part in rotation.slices)
    assert sizes == [90, 90]  # 90 | 50 + 40, and the reader joins the lighter, later one
    assert sum(len(part.readers) for part in rotation.slices) == 1


def test_each_slice_comes_round_once_in_every_checks() -> None:
    watched = [[n] for n in range(4)]
    rotation = Rotation(4)
    rotation.deal("v1", watched, [])
    reads = rotation.read_all()
    watched[2].append("changed")
    seen = [rotation.unchanged(reads) for _ in range(8)]
    assert seen.count(False) == 2  # the changed slice, once per round
    assert seen[:4].count(False) == 1


def test_a_reader_is_read_on_its_turn_only() -> None:
    calls: list[int] = []
    ticks = itertools.count()

    def reader() -> int:  # a value that moves at every read
        calls.append(1)
        return next(ticks)

    rotation = Rotation(3)
    rotation.deal("v1", [[1], [2]], [(1, reader)])
    reads = rotation.read_all()
    calls.clear()
    results = [rotation.unchanged(reads) for _ in range(3)]
    assert len(calls) == 1  # one check in three reads it...
    assert results.count(False) == 1  # ...and sees it moved


def test_the_same_layout_is_not_dealt_again() -> None:
    rotation = Rotation(2)
    rotation.deal("v1", [[1], [2]], [])
    dealt = rotation.slices
    rotation.deal("v1", [[1], [2], [3]], [])
    assert rotation.slices is dealt
    rotation.deal("v2", [[1], [2], [3]], [])
    assert sum(len(part.sources) for part in rotation.slices) == 3


def test_fewer_items_than_slices_make_fewer_slices() -> None:
    rotation = Rotation(8)
    rotation.deal("v1", [[1]], [(1, lambda: 0)])
    assert len(rotation.slices) == 2
