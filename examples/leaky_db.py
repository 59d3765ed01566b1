"""The field report's handler: a connection per invocation, kept in a module-level list.

Set DATABASE_URL to mysql+pymysql://root:@127.0.0.1:3306/test for the real thing (PyMySQL over
TCP); the default is a SQLite file. Every call leaves one more connection open: on Lambda it
fails near invocation 1,000, when the fds run out. The fix is in fixed_db.py.
"""

from db import connect

CONNECTIONS = []  # "to reuse later"; nothing ever takes one back out


def handler(event, context):
    conn = connect()
    CONNECTIONS.append(conn)
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    (value,) = cursor.fetchone()
    return {"statusCode": 200, "body": str(value)}
