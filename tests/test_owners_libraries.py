"""Owners on the real libraries: a client, Session or dependency made per call is named at the
line that made it, with its first use beside it; the module-level twin is clean.

Each leaking handler keeps what it made (as "reuse later" code does) and is soaked: one
finding, of the right kind, counted per owner site. Each clean twin is clean in a soak and
under the default production policy. The HTTP clients talk to a local keep-alive server, redis
to the Redis on 127.0.0.1:6379, boto3 to the same local server as its S3 endpoint (no AWS).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis
from fastapi import Depends, FastAPI
from mangum import Mangum
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

import safehandler
from safehandler._records import Finding
from safehandler.guard import engine_of
from safehandler.testing import FakeLambdaContext, soak

from ._lines import line_of

pytest.register_assert_rewrite("tests.db_fixtures")  # before it is imported

from .db_fixtures import Kept  # noqa: E402

pytest_plugins = ["tests.db_fixtures"]

REDIS = {"host": "127.0.0.1", "port": 6379, "socket_connect_timeout": 3}
# what S3's ListBuckets answers, enough for botocore to parse
BUCKETS = (
    b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult '
    b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>o</ID></Owner>'
    b"<Buckets></Buckets></ListAllMyBucketsResult>"
)


SERVER = f"""
import http.server, sys
BODY = {BUCKETS!r}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services do
    disable_nagle_algorithm = True  # else each answer waits for a delayed ACK

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A local HTTP server in a process of its own: the fds it accepts are not this one's."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=_server_env()
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


def _server_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("SAFEHANDLER")}


@pytest.fixture(scope="module")
def redis_key() -> Iterator[str]:
    """A key of this test run's own on the shared server."""
    client = redis.Redis(**REDIS)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"no Redis answers at 127.0.0.1:6379 ({exc})")
    key = f"safehandler-test-{uuid.uuid4().hex[:10]}"
    yield key
    client.delete(key)
    client.close()


def s3_settings(url: str) -> dict[str, str]:
    """S3 at the local server, with dummy credentials: no AWS account is asked."""
    return {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }


def the_finding(findings: list[Finding], kind: str) -> Finding:
    """The one finding of ``kind``: per owner site, never one per invocation."""
    [finding] = [f for f in findings if f.kind == kind]
    return finding


def assert_owner_line(finding: Finding, made: str, used: str, via: str) -> None:
    assert finding.site is not None
    assert (finding.site.filename, finding.site.lineno) == (__file__, line_of(made))
    assert finding.site.via == via
    assert finding.site.first_use is not None
    assert finding.site.first_use[:2] == (__file__, line_of(used))
    assert f"first used at tests/test_owners_libraries.py:{line_of(used)}" in str(finding)


def production_findings(handler: Callable[..., Any], event: Any, times: int) -> list[Finding]:
    """The default production policy's findings over ``times`` calls."""
    guarded = safehandler.guard(handler)
    engine = engine_of(guarded)
    assert engine is not None
    found: list[Finding] = []
    with engine.observe(lambda invocation: found.extend(invocation.findings), quiet=True):
        for _ in range(times):
            guarded(event, FakeLambdaContext())
    return found


def assert_clean(handler: Callable[..., Any], event: Any = None, invocations: int = 200) -> None:
    report = soak(handler, events=[event or {}], invocations=invocations)
    assert report.clean, str(report)
    assert production_findings(handler, event or {}, 50) == []


# -- httpx ------------------------------------------------------------------------------


def test_an_httpx_client_per_call_is_found_at_its_constructor(url: str, kept: Kept) -> None:
    def handler(event: Any, context: Any) -> int:
        client = httpx.Client()  # httpx-made
        kept.append(client)
        return client.get(url).status_code  # httpx-used

    report = soak(handler, invocations=30)
    finding = the_finding(report.findings, "socket")
    assert finding.count == 30
    assert finding.detail.startswith("to 127.0.0.1:")
    assert_owner_line(finding, "httpx-made", "httpx-used", "httpx.Client")


def test_a_module_level_httpx_client_is_clean(url: str) -> None:
    client = httpx.Client()

    def handler(event: Any, context: Any) -> int:
        return client.get(url).status_code

    try:
        assert_clean(handler)
    finally:
        client.close()


# -- redis-py ---------------------------------------------------------------------------


def test_a_redis_client_per_call_is_found_at_its_constructor(redis_key: str, kept: Kept) -> None:
    def handler(event: Any, context: Any) -> int:
        client = redis.Redis(**REDIS)  # redis-made
        kept.append(client)
        return int(client.incr(redis_key))  # redis-used

    report = soak(handler, invocations=30)
    finding = the_finding(report.findings, "socket")
    assert finding.count == 30
    assert finding.detail == "to 127.0.0.1:6379"
    assert_owner_line(finding, "redis-made", "redis-used", "redis.Redis")


def test_a_module_level_redis_client_is_clean(redis_key: str) -> None:
    client = redis.Redis(**REDIS)

    def handler(event: Any, context: Any) -> int:
        return int(client.incr(redis_key))

    try:
        assert_clean(handler)
    finally:
        client.close()


# -- boto3 ------------------------------------------------------------------------------


def test_a_boto3_client_per_call_is_found_at_its_constructor(url: str, kept: Kept) -> None:
    settings = s3_settings(url)

    def handler(event: Any, context: Any) -> int:
        s3 = boto3.client("s3", **settings)  # boto3-made
        kept.append(s3)
        return len(s3.list_buckets()["Buckets"])  # boto3-used

    report = soak(handler, invocations=20)
    finding = the_finding(report.findings, "socket")
    assert finding.count == 20
    assert_owner_line(finding, "boto3-made", "boto3-used", "a boto3 client")


def test_a_module_level_boto3_client_is_clean(url: str) -> None:
    s3 = boto3.client("s3", **s3_settings(url))

    def handler(event: Any, context: Any) -> int:
        return len(s3.list_buckets()["Buckets"])

    try:
        assert_clean(handler)
    finally:
        s3.close()


# -- SQLAlchemy ORM ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | URL:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    url: URL = request.getfixturevalue("mysql_url")  # a user of this test's own
    return url


def test_an_orm_session_per_call_is_found_where_it_was_made(db_url: str | URL, kept: Kept) -> None:
    engine = create_engine(db_url)

    def handler(event: Any, context: Any) -> int:
        session = Session(engine)  # session-made
        kept.append(session)
        return int(session.execute(text("SELECT 1")).scalar_one())  # session-used

    try:
        # (the default pool holds 15: each leaked Session keeps one checked out)
        report = soak(handler, invocations=10)
    finally:
        kept.close_all()
        engine.dispose()
    finding = the_finding(report.findings, "db_connection")
    assert (finding.noun, finding.count) == ("SQLAlchemy Session", 10)
    assert finding.detail.startswith("with an open transaction on ")
    assert_owner_line(finding, "session-made", "session-used", "sqlalchemy.orm.Session")


def test_an_orm_session_closed_per_call_is_clean(db_url: str | URL) -> None:
    engine = create_engine(db_url)

    def handler(event: Any, context: Any) -> int:
        with Session(engine) as session:
            return int(session.execute(text("SELECT 1")).scalar_one())

    try:
        assert_clean(handler)
    finally:
        engine.dispose()


# -- FastAPI behind Mangum --------------------------------------------------------------

HTTP_EVENT = {
    "version": "2.0",
    "routeKey": "GET /items",
    "rawPath": "/items",
    "rawQueryString": "",
    "headers": {"host": "api.example.com"},
    "requestContext": {
        "http": {
            "method": "GET",
            "path": "/items",
            "sourceIp": "192.0.2.1",
            "protocol": "HTTP/1.1",
        },
        "stage": "$default",
    },
    "isBase64Encoded": False,
}


def fastapi_app(engine: Any, *, closes: bool) -> Mangum:
    """The FastAPI tutorial's dependency, with or without its ``finally: db.close()``."""
    local_session = sessionmaker(engine)

    def get_db() -> Iterator[Session]:
        db = local_session()  # get-db
        if not closes:
            yield db
            return
        try:
            yield db
        finally:
            db.close()

    app = FastAPI()

    @app.get("/items")
    def items(db: Session = Depends(get_db)) -> dict[str, int]:  # noqa: B008 - FastAPI's way
        return {"value": int(db.execute(text("SELECT 1")).scalar_one())}  # get-db-used

    return Mangum(app, lifespan="off")


@pytest.fixture
def mangum_loop() -> Iterator[None]:
    """Mangum runs every request on the thread's event loop: one of the test's own, closed
    after it (as the Lambda runtime's process exit would)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """A Session is freed by the cyclic collector, whenever it runs (the pool runs dry
    first: "QueuePool limit of size 5 overflow 10 reached"). Off, the count is exact."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.usefixtures("no_cyclic_gc", "mangum_loop")
def test_a_fastapi_dependency_without_close_is_named_at_get_db(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    handler = fastapi_app(engine, closes=False)
    try:
        report = soak(handler, events=[HTTP_EVENT], invocations=10)
    finally:
        gc.collect()
        engine.dispose()
    assert report.errors == 0, str(report)
    finding = the_finding(report.findings, "db_connection")
    assert (finding.noun, finding.count) == ("SQLAlchemy Session", 10)
    assert finding.site is not None
    assert finding.site.function == "get_db"
    assert_owner_line(finding, "get-db", "get-db-used", "sqlalchemy.orm.Session")


@pytest.mark.usefixtures("mangum_loop")
def test_a_fastapi_dependency_that_closes_is_clean(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    handler = fastapi_app(engine, closes=True)
    try:
        report = soak(handler, events=[HTTP_EVENT], invocations=200)
        assert report.clean, str(report)
        assert report.errors == 0
        assert production_findings(handler, HTTP_EVENT, 50) == []
    finally:
        engine.dispose()


@pytest.mark.slow
def test_an_httpx_client_closed_per_call_plateaus_and_is_clean_over_1000(url: str) -> None:
    """The field report's false alarm: `with httpx.Client()` per call builds an SSL context
    each time, and RSS climbs for a while before it levels off. Not a leak."""

    def handler(event: Any, context: Any) -> int:
        with httpx.Client() as client:
            return client.get(url).status_code

    report = soak(handler, invocations=1000)
    assert report.clean, str(report)
    assert report.notes == []  # memory was judged
