"""leaky_sqlite.py fixed: the connection is closed before the handler returns."""

import os
import sqlite3
import tempfile
from contextlib import closing

DATABASE = os.environ.get("ORDERS_DB", os.path.join(tempfile.gettempdir(), "safehandler-orders.db"))


def handler(event, context):
    with closing(sqlite3.connect(DATABASE)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
        (count,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
    return {"statusCode": 200, "body": f"{count} orders"}
