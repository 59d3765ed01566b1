"""The stand-ins that keep typing and contextlib out of ``import safehandler``: the private
NamedTuple builds what ``typing.NamedTuple`` builds, ``suppress`` does what contextlib's does."""

from __future__ import annotations

import contextlib
import pickle
import typing
from typing import Any

import pytest

from safehandler import _tuple
from safehandler._records import InvocationStats, Site
from safehandler._suppress import suppress

SOURCE = '''
class Point(NamedTuple):
    """A point, maybe named."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)

    @classmethod
    def origin(cls) -> "Point":
        return cls(0)

    def __str__(self) -> str:
        return f"({self.x}, {self.y})"
'''
FUTURE = "from __future__ import annotations\n"


def _build(base: Any, future: bool = True) -> Any:
    namespace: dict[str, Any] = {"NamedTuple": base, "__name__": "tests.fake_module"}
    # dont_inherit: this file's own future import would apply to the code otherwise
    code = compile((FUTURE if future else "") + SOURCE, "<record>", "exec", dont_inherit=True)
    exec(code, namespace)
    return namespace["Point"]


@pytest.mark.parametrize("future", [True, False])
def test_the_same_class_as_typing_builds(future: bool) -> None:
    ours, theirs = _build(_tuple.NamedTuple, future), _build(typing.NamedTuple, future)
    assert ours.__mro__[1:] == theirs.__mro__[1:] == (tuple, object)
    for attr in ("__name__", "__qualname__", "__module__", "__doc__", "_fields"):
        assert getattr(ours, attr) == getattr(theirs, attr)
    assert ours._fields == ("x", "y", "label")
    assert ours._field_defaults == theirs._field_defaults == {"y": 0, "label": None}
    assert list(ours.__annotations__) == list(theirs.__annotations__) == ["x", "y", "label"]
    assert ours.__new__.__defaults__ == theirs.__new__.__defaults__ == (0, None)
    assert ours.__slots__ == theirs.__slots__ == ()
    point = ours(3, -4)
    assert repr(point) == "Point(x=3, y=-4, label=None)"
    assert str(point) == "(3, -4)"
    assert point.norm == 7
    assert ours.origin() == (0, 0, None)
    assert ours._make([1, 2, "a"]) == (1, 2, "a")
    assert point._replace(label="p")._asdict() == {"x": 3, "y": -4, "label": "p"}
    assert point == theirs(3, -4)
    with pytest.raises(AttributeError):
        point.x = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        point.other = 1


def test_without_the_future_import_the_annotations_are_values() -> None:
    """Python 3.14 (PEP 649) gives the class body an annotate function, not a dict, when the
    future import is missing; before 3.14 the dict holds evaluated annotations. Either way the
    fields are found in order."""
    ours = _build(_tuple.NamedTuple, future=False)
    assert ours._fields == ("x", "y", "label")
    assert ours.__annotations__["x"] is int


def test_a_body_without_annotations_has_no_fields() -> None:
    class Empty(_tuple.NamedTuple):
        """Nothing."""

    assert Empty._fields == ()
    assert Empty() == ()
    assert Empty.__doc__ == "Nothing."


BAD_BODIES = {
    "a default before a field without": "class Bad(NamedTuple):\n    a: int = 1\n    b: int\n",
    "namedtuple's own method": "class Bad(NamedTuple):\n    a: int\n    def _make(self): pass\n",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_the_errors_typing_raises(body: str) -> None:
    raised = []
    for base in (_tuple.NamedTuple, typing.NamedTuple):
        with pytest.raises((TypeError, AttributeError)) as info:
            exec(FUTURE + body, {"NamedTuple": base, "__name__": "tests.fake_module"})
        raised.append((type(info.value), str(info.value)))
    assert raised[0] == raised[1]


def test_only_namedtuple_as_base() -> None:
    with pytest.raises(TypeError, match="can only inherit from a NamedTuple type"):

        class Mixed(_tuple.NamedTuple, dict):  # type: ignore[misc]
            a: int


def test_the_package_records_pickle_and_round_trip() -> None:
    site = Site("app.py", 12, "handler", via="pymysql.connect")
    assert pickle.loads(pickle.dumps(site)) == site
    assert type(pickle.loads(pickle.dumps(site))) is Site
    assert Site.from_dict(site.to_dict()) == site
    assert str(site) == "app.py:12 in handler (via pymysql.connect)"
    stats = InvocationStats(1, 3, 1, None, False, 0)
    assert stats.db is None
    assert InvocationStats._fields[-1] == "db"
    assert Site.__module__ == "safehandler._records"
    assert Site.__doc__ == "A line of user code that created a resource."


@pytest.mark.parametrize("make", [suppress, contextlib.suppress], ids=["ours", "contextlib"])
def test_suppress_as_contextlib_does(make: Any) -> None:
    ran = []
    with make(LookupError):
        ran.append(1)
        raise KeyError("a subclass")
    ran.append(2)
    with make(OSError, ValueError):
        raise ValueError("the second type")
    with make(TypeError):
        ran.append(3)  # no exception: the block ran, nothing to suppress
    with pytest.raises(ZeroDivisionError), make(LookupError):
        _ = 1 / 0  # another type goes through
    with pytest.raises(KeyboardInterrupt), make(Exception):
        raise KeyboardInterrupt  # a BaseException is no Exception
    assert ran == [1, 2, 3]
