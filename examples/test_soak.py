"""safehandler's pytest plugin on the examples: `pytest examples/test_soak.py` (one fails)."""

import clean_reuse
import leaky_sqlite
import pytest


@pytest.mark.soak(invocations=1500)
def test_reuse_is_not_a_leak():
    return clean_reuse.handler


@pytest.mark.soak(handler="leaky_sqlite:handler", events="events/")
def test_leaky_handler_fails():
    pass


def test_with_the_fixture(soak):
    report = soak(leaky_sqlite.handler, invocations=100, check=False)
    assert report.findings[0].site.location.endswith("leaky_sqlite.py:17")
