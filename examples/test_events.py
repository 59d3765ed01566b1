"""Soak a handler with generated SQS batches: `pytest examples/test_events.py`."""

import fixed_db

from safehandler.strategies import sqs_events


def test_any_sqs_batch_leaves_nothing_open(soak):
    report = soak(fixed_db.handler, events=sqs_events(max_records=5), invocations=300)
    assert report.errors == 0
