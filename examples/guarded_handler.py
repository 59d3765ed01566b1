"""The decorator in production: findings become one JSON log line each, never a failed call."""

import os
import sqlite3
import tempfile

import safehandler

DATABASE = os.path.join(tempfile.gettempdir(), "safehandler-orders.db")
CONNECTIONS = []


@safehandler.guard
def handler(event, context):
    conn = sqlite3.connect(DATABASE)
    CONNECTIONS.append(conn)  # the leak safehandler reports at invocation 8
    return {"statusCode": 200}
