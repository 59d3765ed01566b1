"""Reuse is not a leak: one connection, opened on the first call, kept at module level.

This is the pattern Lambda recommends (it saves a connect per invocation), and safehandler
must report it clean: the connection is retained once, it does not grow.
"""

import os
import sqlite3
import tempfile

DATABASE = os.environ.get("ORDERS_DB", os.path.join(tempfile.gettempdir(), "safehandler-orders.db"))
_connection = None


def _db():
    global _connection
    if _connection is None:
        _connection = sqlite3.connect(DATABASE)
        _connection.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
    return _connection


def handler(event, context):
    (count,) = _db().execute("SELECT COUNT(*) FROM orders").fetchone()
    with open(__file__, encoding="utf-8") as source:  # opened and closed: not retained
        source.readline()
    return {"statusCode": 200, "body": f"{count} orders"}
