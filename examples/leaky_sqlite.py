"""The field report in miniature, on SQLite: a connection opened per invocation, never closed.

Each call keeps its connection in a module-level dict "to reuse it later", so the file
descriptor stays open. On Lambda (1,024 fds) this handler starts failing near invocation 1,000.
The fix is in fixed_sqlite.py.
"""

import os
import sqlite3
import tempfile

DATABASE = os.environ.get("ORDERS_DB", os.path.join(tempfile.gettempdir(), "safehandler-orders.db"))
CONNECTIONS = {}


def handler(event, context):
    conn = sqlite3.connect(DATABASE)
    CONNECTIONS[context.aws_request_id] = conn
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
    (count,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
    return {"statusCode": 200, "body": f"{count} orders"}
