"""Creation sites: the user's line first, library frames folded into ``via``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from safehandler._records import Site
from safehandler._sites import capture_site

from ._lines import line_of

HERE = os.path.relpath(__file__)


def test_site_is_the_first_user_frame() -> None:
    site = capture_site(sys._getframe())  # here
    assert site is not None
    assert site.location == f"{HERE}:{line_of('here')}"
    assert site.function == "test_site_is_the_first_user_frame"
    assert site.via is None


def _open_via_a_helper(path: Path) -> None:
    path.write_text("{}")
    with open(path, encoding="utf-8") as handle:  # helper-open
        json.load(handle)


def test_a_file_closed_in_a_helper_does_not_take_the_site(guarded, tmp_path: Path) -> None:
    files = []

    def handler(event, context):
        _open_via_a_helper(tmp_path / "x.json")
        files.append(open(tmp_path / "x.json", encoding="utf-8"))  # handler-open

    guard = guarded(handler)
    try:
        guard(2)
    finally:
        for handle in files:
            handle.close()
    [finding] = guard.findings
    assert finding.site is not None
    assert finding.site.location == f"{HERE}:{line_of('handler-open')}"


def test_str_and_relative_paths() -> None:
    inside = Site(os.path.abspath("app.py"), 12, "handler", "pymysql.connect")
    assert str(inside) == "app.py:12 in handler (via pymysql.connect)"
    outside = Site("/elsewhere/app.py", 3, "handler")
    assert str(outside) == "/elsewhere/app.py:3 in handler"


class _Base:
    def where(self) -> object:
        return sys._getframe()

    @classmethod
    def where_cls(cls) -> object:
        return sys._getframe()


class _Derived(_Base):
    pass


def test_before_311_a_method_is_named_by_the_class_that_defines_it() -> None:
    """Python 3.10 code objects have no co_qualname: the class is found through self or cls."""
    from safehandler._sites import _method_qualname

    assert _method_qualname(_Derived().where()) == "_Base.where"  # type: ignore[arg-type]
    assert _method_qualname(_Derived.where_cls()) == "_Base.where_cls"  # type: ignore[arg-type]
    assert _method_qualname(sys._getframe()) is None  # a plain function
