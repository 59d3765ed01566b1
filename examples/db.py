"""Connect to ``DATABASE_URL``: SQLite (the default, embedded) or MySQL/MariaDB via PyMySQL.

``sqlite:///path.db`` or ``mysql+pymysql://user:password@host:port/database``.
"""

import os
import sqlite3
import tempfile
from urllib.parse import unquote, urlsplit

DEFAULT_URL = f"sqlite:///{os.path.join(tempfile.gettempdir(), 'safehandler-orders.db')}"


def connect(url=None):
    """A DB-API connection to ``url`` (default: ``$DATABASE_URL``, else a SQLite file)."""
    parts = urlsplit(url or os.environ.get("DATABASE_URL", DEFAULT_URL))
    if parts.scheme == "sqlite":
        return sqlite3.connect(parts.path.removeprefix("/") or ":memory:")
    if parts.scheme in ("mysql", "mysql+pymysql"):
        import pymysql

        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.removeprefix("/") or None,
        )
    raise ValueError(f"DATABASE_URL scheme {parts.scheme!r}: use sqlite or mysql+pymysql")
