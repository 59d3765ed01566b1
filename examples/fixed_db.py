"""leaky_db.py fixed: the connection is scoped to the invocation (commit, roll back, close)."""

from db import connect

import safehandler.db


def handler(event, context):
    with safehandler.db.scope(connect) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
    return {"statusCode": 200, "body": str(value)}
