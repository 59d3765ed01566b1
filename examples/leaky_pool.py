"""The field report's ORM case: a connection checked out of a module-level pool and kept.

The pool holds one connection (SQLAlchemy's QueuePool, as for any file database); the first
invocation takes it and never gives it back, so every later checkout waits for the pool's
timeout and fails. Soaked without bounds, that is 1,499 waits; `--fail-fast` stops at the
verdict. The fix: `with ENGINE.connect() as conn:`.
"""

import os
import tempfile

import sqlalchemy

ENGINE = sqlalchemy.create_engine(
    "sqlite:///" + os.path.join(tempfile.gettempdir(), "safehandler-pool.db"),
    pool_size=1,
    max_overflow=0,
    pool_timeout=1,
)
CHECKED_OUT = []


def handler(event, context):
    conn = ENGINE.connect()
    CHECKED_OUT.append(conn)  # "returned later"; never is
    conn.execute(sqlalchemy.text("SELECT 1"))
    return {"statusCode": 200}
