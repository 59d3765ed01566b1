"""Hypothesis strategies for the events Lambda hands a handler, for use in your own tests.

Each strategy draws a plain ``dict`` shaped like the event the service really sends: the keys
it sends (and no others), ``null`` where it sends ``null``, values in the formats it uses (ARNs
with account ids and regions, ISO-8601 or CLF times, epoch milliseconds as numbers or strings as
the service has it, UUID message ids), and fields that agree with each other (a base64 flag
that matches the body, ``headers`` that hold the last value of ``multiValueHeaders``, an MD5
that is the body's, an ARN whose region is ``awsRegion``). Powertools' event source data
classes parse every one of them; everything drawn survives ``json.dumps``/``json.loads``.

This module imports Hypothesis, so ``import safehandler`` does not import it::

    from hypothesis import given

    from safehandler.strategies import sqs_events
    from safehandler.testing import FakeLambdaContext

    from app import handler


    @given(sqs_events(max_records=3))
    def test_handler_reports_no_failed_messages(event):
        assert handler(event, FakeLambdaContext())["batchItemFailures"] == []

Where a real event omits a key, so do these (a REST API event has no ``version``; an HTTP API
event without a body has no ``body``; an S3 delete has no ``size``): a handler that reads it
blindly fails here as it would in production.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import string
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

__all__ = [
    "alb_events",
    "any_event",
    "api_gateway_http_events",
    "api_gateway_rest_events",
    "dynamodb_stream_events",
    "eventbridge_events",
    "kinesis_stream_events",
    "s3_events",
    "sns_events",
    "sqs_events",
]

Event = dict[str, Any]
# A request body: text, binary (sent base64-encoded), or none at all.
Body = str | bytes | None

# Lambda's limit for a batch from a queue or a stream.
_MAX_BATCH = 10_000

# -- shared values --------------------------------------------------------------------

# Strategies drawn from inside other strategies are built once, at import: building one
# validates it, and for the recursive ones that costs more than drawing from it.

_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-south-1",
    "sa-east-1",
    "ca-central-1",
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LOWER_ALNUM = string.ascii_lowercase + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_HEX = "0123456789abcdef"

_regions = st.sampled_from(_REGIONS)
# Account ids are 12 digits and may start with 0.
_account_ids = st.integers(0, 10**12 - 1).map(lambda n: f"{n:012d}")
_ipv4s = st.ip_addresses(v=4).map(str)
_uuids = st.uuids(version=4).map(str)


def _fixed(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size)


@functools.cache
def _names(max_size: int = 20, extra: str = "-") -> st.SearchStrategy[str]:
    """Resource names as people write them: a letter, then letters, digits and ``extra``."""
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(string.ascii_lowercase),
        st.text(_LOWER_ALNUM + extra, max_size=max_size - 1),
    )


# Millisecond precision, UTC: what every service here stamps its events with.
_instants = st.datetimes(
    min_value=datetime(2018, 1, 1), max_value=datetime(2030, 12, 31, 23, 59, 59)
).map(lambda dt: dt.replace(microsecond=dt.microsecond // 1000 * 1000, tzinfo=timezone.utc))


def _epoch_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _iso_ms(dt: datetime) -> str:
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def _iso_s(dt: datetime) -> str:
    return f"{dt:%Y-%m-%dT%H:%M:%S}Z"


def _clf(dt: datetime) -> str:
    # strftime's %b follows the locale; API Gateway's month names do not.
    return f"{dt.day:02d}/{_MONTHS[dt.month - 1]}/{dt.year}:{dt:%H:%M:%S} +0000"


def _blob(seed: str, size: int) -> bytes:
    """Opaque bytes (signatures, receipt handles) derived from a drawn id, not drawn byte by
    byte: Hypothesis would spend its budget on noise nobody reads."""
    return hashlib.shake_256(seed.encode()).digest(size)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# API Gateway's short request ids: "JKJaXmPLvHcESHA=".
_short_ids = st.binary(min_size=11, max_size=11).map(_b64)


def _decimal_text(units: int, places: int) -> str:
    # DynamoDB sends numbers normalised: "1.5" not "1.50", "100" not "1E+2".
    return format(Decimal(units).scaleb(-places).normalize(), "f")


_number_text = st.builds(_decimal_text, st.integers(-(10**15), 10**15), st.integers(0, 6))

_json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=10,
)
_json_objects = st.dictionaries(_names(12, "_"), _json_values, max_size=5)
_json_texts = _json_objects.map(json.dumps)


# Text a queue or topic accepts: SQS refuses most control characters and U+FFFE/U+FFFF.
_message_text = st.text(
    st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters="\ufffe\uffff")
    | st.sampled_from("\t\n"),
    min_size=1,
    max_size=60,
)


# What producers put in a queue or topic: JSON documents or plain text.
_message_bodies = st.one_of(_json_texts, _message_text)


def _check_batch(min_records: int, max_records: int) -> None:
    if not 1 <= min_records <= max_records <= _MAX_BATCH:
        raise InvalidArgument(
            f"min_records={min_records}, max_records={max_records}: "
            f"need 1 <= min_records <= max_records <= {_MAX_BATCH}"
        )


# -- HTTP requests (API Gateway REST and HTTP APIs, ALB) ------------------------------

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_USER_AGENTS = (
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "okhttp/4.12.0",
    "aws-sdk-js/3.600.0",
)
_ACCEPTS = ("*/*", "application/json", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
_OPTIONAL_HEADERS = {
    "Accept-Encoding": st.sampled_from(["gzip, deflate, br", "gzip", "identity"]),
    "Accept-Language": st.sampled_from(["en-US,en;q=0.9", "de-DE", "fr-FR,fr;q=0.8"]),
    "Authorization": _fixed(string.ascii_letters + string.digits, 32).map(lambda t: "Bearer " + t),
    "X-Request-Id": _uuids,
    "Cache-Control": st.sampled_from(["no-cache", "max-age=0"]),
}
# Header values a client may send: printable ASCII, no leading or trailing space.
_header_values = st.lists(
    st.text(string.ascii_letters + string.digits + "-_.:/=;", min_size=1, max_size=12),
    min_size=1,
    max_size=3,
).map(" ".join)
_query_values = st.text(
    string.ascii_letters + string.digits + " -_.~,:/@!$'()*+=&?%#" + "é中",
    max_size=12,
)
_queries = st.lists(
    st.tuples(st.sampled_from(("q", "page", "limit", "sort", "filter", "tag")), _query_values),
    max_size=5,
)
_methods = st.sampled_from(_METHODS)
_user_agents = st.sampled_from(_USER_AGENTS)
_accepts = st.sampled_from(_ACCEPTS)
_optional_header_names = st.lists(st.sampled_from(sorted(_OPTIONAL_HEADERS)), unique=True)
_custom_tags = st.lists(_header_values, max_size=3)
_cookies = st.lists(st.builds("{}={}".format, _names(8, "_"), _names(12)), max_size=3)


class _Route(NamedTuple):
    """``resource`` is the template API Gateway matched, ``path`` the concrete request path."""

    resource: str
    path: str
    parameters: dict[str, str] | None


class _Request(NamedTuple):
    method: str
    route: _Route
    query: list[tuple[str, str]]  # in request order; a name may repeat
    headers: list[tuple[str, str]]  # canonical case, in request order; a name may repeat
    cookies: list[str]
    body: Body
    source_ip: str
    user_agent: str
    instant: datetime
    account_id: str
    region: str


_segments = st.text(_LOWER_ALNUM + "-_", min_size=1, max_size=12)
_proxy_segments = st.lists(_segments, min_size=1, max_size=3)
_parameter_names = st.sampled_from(("id", "orderId", "userId", "name", "slug"))
_parameter_values = st.one_of(
    st.integers(1, 10**9).map(str),
    _uuids,
    _names(16),
    st.from_regex(r"[A-Z]{2}-[0-9]{4}", fullmatch=True),
)


@st.composite
def _routes(draw: st.DrawFn) -> _Route:
    """A resource template such as ``/orders/{orderId}/items`` and a path that matches it."""
    template: list[str] = []
    path: list[str] = []
    parameters: dict[str, str] = {}
    for i in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            segment = draw(_segments)
            template.append(segment)
            path.append(segment)
        else:
            name = draw(_parameter_names) + (str(i) if i else "")
            value = draw(_parameter_values)
            template.append("{" + name + "}")
            path.append(value)
            parameters[name] = value
    if draw(st.integers(0, 4)) == 0:
        # A greedy {proxy+} takes the rest of the path, slashes and all.
        value = "/".join(draw(_proxy_segments))
        template.append("{proxy+}")
        path.append(value)
        parameters["proxy"] = value
    return _Route("/" + "/".join(template), "/" + "/".join(path), parameters or None)


def _concrete_routes(paths: st.SearchStrategy[str]) -> st.SearchStrategy[_Route]:
    return paths.map(lambda path: _Route(path, path, None))


_templated_routes = _routes()
_bodies: st.SearchStrategy[Body] = st.one_of(
    st.none(), _json_texts, st.text(max_size=40), st.binary(min_size=1, max_size=40)
)


def _content_type(body: str | bytes) -> str:
    if isinstance(body, bytes):
        return "application/octet-stream"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def _body_bytes(body: str | bytes) -> bytes:
    return body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")


def _render_body(body: Body) -> tuple[str | None, bool]:
    """``(body, isBase64Encoded)`` as the services send it: binary bodies go base64."""
    if isinstance(body, bytes):
        return _b64(body), True
    return body, False


def _trace_id(dt: datetime, draw: st.DrawFn) -> str:
    return f"Root=1-{int(dt.timestamp()):08x}-{draw(_fixed(_HEX, 24))}"


@st.composite
def _requests(
    draw: st.DrawFn,
    methods: st.SearchStrategy[str] | None,
    paths: st.SearchStrategy[str] | None,
    body: st.SearchStrategy[Body] | None,
) -> _Request:
    method = draw(methods if methods is not None else _methods)
    route = draw(_templated_routes if paths is None else _concrete_routes(paths))
    if body is None:
        body = st.none() if method in _NO_BODY_METHODS else _bodies
    drawn_body = draw(body)
    instant = draw(_instants)
    source_ip = draw(_ipv4s)
    user_agent = draw(_user_agents)
    query = draw(_queries)

    headers = [
        ("Accept", draw(_accepts)),
        ("User-Agent", user_agent),
        ("X-Amzn-Trace-Id", _trace_id(instant, draw)),
        ("X-Forwarded-For", source_ip),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Proto", "https"),
    ]
    if drawn_body is not None:
        headers.append(("Content-Type", _content_type(drawn_body)))
        headers.append(("Content-Length", str(len(_body_bytes(drawn_body)))))
    optional = draw(_optional_header_names)
    headers += [(name, draw(_OPTIONAL_HEADERS[name])) for name in optional]
    # A header sent more than once is what multiValueHeaders exists for.
    headers += [("X-Custom-Tag", value) for value in draw(_custom_tags)]
    cookies = draw(_cookies)
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))

    return _Request(
        method=method,
        route=route,
        query=query,
        headers=headers,
        cookies=cookies,
        body=drawn_body,
        source_ip=source_ip,
        user_agent=user_agent,
        instant=instant,
        account_id=draw(_account_ids),
        region=draw(_regions),
    )


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _last(grouped: dict[str, list[str]]) -> dict[str, str]:
    return {name: values[-1] for name, values in grouped.items()}


def _lowered(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name.lower(), value) for name, value in pairs]


def _encoded(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(quote(name, safe=""), quote(value, safe="")) for name, value in pairs]


_api_ids = _fixed(_LOWER_ALNUM, 10)
_stage_variables = st.none() | st.dictionaries(_names(10), _names(10), max_size=2)
_stages = st.sampled_from(["prod", "dev", "staging", "v1"])


@st.composite
def _rest_events(
    draw: st.DrawFn,
    methods: st.SearchStrategy[str] | None,
    paths: st.SearchStrategy[str] | None,
    body: st.SearchStrategy[Body] | None,
) -> Event:
    request = draw(_requests(methods, paths, body))
    api_id = draw(_api_ids)
    stage = draw(_stages)
    domain = f"{api_id}.execute-api.{request.region}.amazonaws.com"
    headers = _grouped([("Host", domain), *request.headers])
    query = _grouped(request.query)
    rendered, is_base64 = _render_body(request.body)
    stage_variables = draw(_stage_variables)
    return {
        "resource": request.route.resource,
        "path": request.route.path,
        "httpMethod": request.method,
        "headers": _last(headers),
        "multiValueHeaders": headers,
        "queryStringParameters": _last(query) if query else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": request.route.parameters,
        "stageVariables": stage_variables or None,
        "requestContext": {
            "resourceId": draw(_fixed(_LOWER_ALNUM, 6)),
            "resourcePath": request.route.resource,
            "httpMethod": request.method,
            "extendedRequestId": draw(_short_ids),
            "requestTime": _clf(request.instant),
            # With the execute-api domain, the stage leads the path here but not above.
            "path": f"/{stage}{request.route.path}",
            "accountId": request.account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": _epoch_ms(request.instant),
            "requestId": draw(_uuids),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.user_agent,
                "user": None,
            },
            "domainName": domain,
            "apiId": api_id,
        },
        "body": rendered,
        "isBase64Encoded": is_base64,
    }


def api_gateway_rest_events(
    *,
    methods: st.SearchStrategy[str] | None = None,
    paths: st.SearchStrategy[str] | None = None,
    body: st.SearchStrategy[Body] | None = None,
) -> st.SearchStrategy[Event]:
    """API Gateway REST API events (Lambda proxy integration, the 1.0 payload).

    ``methods`` draws the HTTP method (default: the seven common ones). ``paths`` draws concrete
    request paths such as ``"/orders/42"``; by default the strategy draws a resource template
    (``/orders/{orderId}``, sometimes ending in ``{proxy+}``) with a path that matches it and
    the ``pathParameters`` that go with it. ``body`` draws ``str`` (sent as is), ``bytes``
    (sent base64-encoded with ``isBase64Encoded: true``) or ``None`` (``"body": null``); by
    default GET, HEAD, OPTIONS and DELETE carry no body and the others JSON, text, bytes or
    nothing, with ``Content-Type`` and ``Content-Length`` to match.

    Headers come as the client sent them, in ``multiValueHeaders`` and, last value only, in
    ``headers``; query strings likewise, decoded, or ``null`` when there are none. There is no
    top-level ``version`` key: REST APIs do not send one (so Powertools'
    ``APIGatewayProxyEvent.version`` raises ``KeyError`` on a real event, and on these).

    Example::

        @given(api_gateway_rest_events(methods=st.just("POST"), body=st.just('{"qty": 2}')))
        def test_create_order(event):
            response = handler(event, FakeLambdaContext())
            assert response["statusCode"] == 201
    """
    return _rest_events(methods, paths, body)


@st.composite
def _http_events(
    draw: st.DrawFn,
    methods: st.SearchStrategy[str] | None,
    paths: st.SearchStrategy[str] | None,
    body: st.SearchStrategy[Body] | None,
) -> Event:
    request = draw(_requests(methods, paths, body))
    api_id = draw(_api_ids)
    stage = draw(st.just("$default") | _stages)
    domain = f"{api_id}.execute-api.{request.region}.amazonaws.com"
    # Cookies move to their own field; header names arrive lower-cased, repeats comma-joined.
    pairs = [("host", domain), *_lowered(request.headers)]
    headers = {
        name: ",".join(values) for name, values in _grouped(pairs).items() if name != "cookie"
    }
    # The stage leads the raw path unless it is $default.
    raw_path = request.route.path if stage == "$default" else f"/{stage}{request.route.path}"
    route_key = draw(
        st.sampled_from(["$default", f"{request.method} {request.route.resource}"])
        if request.route.parameters is None
        else st.just(f"{request.method} {request.route.resource}")
    )
    event: Event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "&".join(f"{n}={v}" for n, v in _encoded(request.query)),
    }
    if request.cookies:
        event["cookies"] = request.cookies
    event["headers"] = headers
    if request.query:
        event["queryStringParameters"] = {
            name: ",".join(values) for name, values in _grouped(request.query).items()
        }
    event["requestContext"] = {
        "accountId": request.account_id,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": api_id,
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": request.user_agent,
        },
        # HTTP APIs use short base64 ids here, not UUIDs.
        "requestId": draw(_short_ids),
        "routeKey": route_key,
        "stage": stage,
        "time": _clf(request.instant),
        "timeEpoch": _epoch_ms(request.instant),
    }
    if request.route.parameters is not None:
        event["pathParameters"] = request.route.parameters
    rendered, is_base64 = _render_body(request.body)
    if rendered is not None:
        event["body"] = rendered
    event["isBase64Encoded"] = is_base64
    return event


def api_gateway_http_events(
    *,
    methods: st.SearchStrategy[str] | None = None,
    paths: st.SearchStrategy[str] | None = None,
    body: st.SearchStrategy[Body] | None = None,
) -> st.SearchStrategy[Event]:
    """API Gateway HTTP API events (the 2.0 payload, also what function URLs resemble).

    ``methods``, ``paths`` and ``body`` work as in :func:`api_gateway_rest_events`; ``paths``
    are the paths without the stage. As HTTP APIs send them: header names lower-cased with
    repeated headers comma-joined, cookies in a ``cookies`` list rather than a header,
    ``rawQueryString`` URL-encoded and ``queryStringParameters`` decoded and comma-joined,
    ``body``, ``cookies``, ``queryStringParameters`` and ``pathParameters`` absent (not null)
    when empty. The stage is ``$default`` or a named stage; a named stage leads ``rawPath``,
    and Powertools' ``APIGatewayProxyEventV2.path`` strips it again.

    Example::

        @given(api_gateway_http_events(paths=st.just("/health"), methods=st.just("GET")))
        def test_health(event):
            assert handler(event, FakeLambdaContext())["statusCode"] == 200
    """
    return _http_events(methods, paths, body)


@st.composite
def _alb_events(
    draw: st.DrawFn,
    methods: st.SearchStrategy[str] | None,
    paths: st.SearchStrategy[str] | None,
    body: st.SearchStrategy[Body] | None,
    multi_value: bool | None,
) -> Event:
    request = draw(_requests(methods, paths, body))
    multi = draw(st.booleans()) if multi_value is None else multi_value
    name = draw(_names(20))
    host = f"{name}-{draw(st.integers(10**8, 10**10))}.{request.region}.elb.amazonaws.com"
    headers = _grouped([("host", host), *_lowered(request.headers)])
    # ALB passes the query string through still URL-encoded.
    query = _grouped(_encoded(request.query))
    rendered, is_base64 = _render_body(request.body)
    target_group = (
        f"arn:aws:elasticloadbalancing:{request.region}:{request.account_id}:"
        f"targetgroup/{name}/{draw(_fixed(_HEX, 16))}"
    )
    event: Event = {
        "requestContext": {"elb": {"targetGroupArn": target_group}},
        "httpMethod": request.method,
        "path": request.route.path,
    }
    # One pair or the other, as the target group's multi-value setting says, never both.
    if multi:
        event["multiValueQueryStringParameters"] = query
        event["multiValueHeaders"] = headers
    else:
        event["queryStringParameters"] = _last(query)
        event["headers"] = _last(headers)
    event["body"] = rendered if rendered is not None else ""
    event["isBase64Encoded"] = is_base64
    return event


def alb_events(
    *,
    methods: st.SearchStrategy[str] | None = None,
    paths: st.SearchStrategy[str] | None = None,
    body: st.SearchStrategy[Body] | None = None,
    multi_value: bool | None = None,
) -> st.SearchStrategy[Event]:
    """Application Load Balancer events.

    ``methods``, ``paths`` and ``body`` work as in :func:`api_gateway_rest_events`. With
    ``multi_value=True`` the event has ``multiValueHeaders`` and
    ``multiValueQueryStringParameters``, with ``False`` ``headers`` and
    ``queryStringParameters`` (last value wins), as a target group with multi-value headers on
    or off sends; ``None`` (the default) draws either. Header names are lower-cased, query
    strings still URL-encoded, and a request without a body has ``"body": ""``.

    Example::

        @given(alb_events(multi_value=True))
        def test_handler_answers_every_request(event):
            assert "statusCode" in handler(event, FakeLambdaContext())
    """
    return _alb_events(methods, paths, body, multi_value)


# -- SQS ------------------------------------------------------------------------------

_attribute_names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(string.ascii_letters),
    st.text(string.ascii_letters + string.digits + "_-", max_size=15),
)


def _transport_type(data_type: str) -> int:
    return 2 if data_type.partition(".")[0] == "Binary" else 1


def _md5_of_message_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """The ``md5OfMessageAttributes`` SQS computes for attributes in the Lambda event shape.

    Each attribute, sorted by name, contributes its name, data type, a transport byte (1 for
    string values, 2 for binary) and its value, every variable part prefixed with its length
    as a 4-byte big-endian integer.
    """
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        data_type: str = attribute["dataType"]
        transport = _transport_type(data_type)
        if transport == 2:
            value = base64.b64decode(attribute["binaryValue"])
        else:
            value = attribute["stringValue"].encode()
        for part in (name.encode(), data_type.encode()):
            digest.update(len(part).to_bytes(4, "big") + part)
        digest.update(transport.to_bytes(1, "big") + len(value).to_bytes(4, "big") + value)
    return digest.hexdigest()


@st.composite
def _sqs_message_attribute(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["String", "Number", "Binary"]))
    label = draw(st.sampled_from(["", "", ".json", ".int"] if kind != "Binary" else ["", ".gz"]))
    attribute: dict[str, Any]
    if kind == "Binary":
        attribute = {"binaryValue": _b64(draw(st.binary(min_size=1, max_size=24)))}
    elif kind == "Number":
        attribute = {"stringValue": draw(_number_text)}
    else:
        attribute = {"stringValue": draw(_message_text)}
    # Reserved for future use, and always sent empty.
    attribute.update(stringListValues=[], binaryListValues=[], dataType=kind + label)
    return attribute


_sqs_message_attributes = st.dictionaries(_attribute_names, _sqs_message_attribute(), max_size=3)
# An IAM user's id, or a role's with the session name.
_sqs_sender_ids = _fixed(_UPPER_ALNUM, 17).map(lambda s: "AIDA" + s) | st.builds(
    lambda r, s: f"AROA{r}:{s}", _fixed(_UPPER_ALNUM, 17), _names(16)
)


@st.composite
def _sqs_events(
    draw: st.DrawFn,
    min_records: int,
    max_records: int,
    body: st.SearchStrategy[str] | None,
    fifo: bool | None,
) -> Event:
    region = draw(_regions)
    account_id = draw(_account_ids)
    is_fifo = draw(st.booleans()) if fifo is None else fifo
    queue = draw(_names(40, "-_")) + (".fifo" if is_fifo else "")
    queue_arn = f"arn:aws:sqs:{region}:{account_id}:{queue}"
    sender = draw(_sqs_sender_ids)
    sent = draw(_instants)
    sequence = draw(st.integers(10**19, 10**20))
    groups = draw(st.lists(_names(12), min_size=1, max_size=3, unique=True))
    count = draw(st.integers(min_records, max_records))
    records = []
    for _ in range(count):
        message_id = draw(_uuids)
        text = draw(body if body is not None else _message_bodies)
        sent += timedelta(milliseconds=draw(st.integers(0, 5_000)))
        received = sent + timedelta(milliseconds=draw(st.integers(0, 60_000)))
        attributes = {
            "ApproximateReceiveCount": str(draw(st.integers(1, 5))),
            "SentTimestamp": str(_epoch_ms(sent)),
            "SenderId": sender,
            "ApproximateFirstReceiveTimestamp": str(_epoch_ms(received)),
        }
        if draw(st.booleans()):
            attributes["AWSTraceHeader"] = (
                _trace_id(sent, draw)
                + f";Parent={draw(_fixed(_HEX, 16))};Sampled={draw(st.sampled_from('01'))}"
            )
        if is_fifo:
            sequence += draw(st.integers(1, 10**6))
            attributes["SequenceNumber"] = str(sequence)
            attributes["MessageGroupId"] = draw(st.sampled_from(groups))
            attributes["MessageDeduplicationId"] = hashlib.sha256(text.encode()).hexdigest()
        message_attributes = draw(_sqs_message_attributes)
        record: Event = {
            "messageId": message_id,
            "receiptHandle": "AQEB" + _b64(_blob(message_id, 120)),
            "body": text,
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        }
        if message_attributes:
            record["md5OfMessageAttributes"] = _md5_of_message_attributes(message_attributes)
        record.update(eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region)
        records.append(record)
    return {"Records": records}


def sqs_events(
    min_records: int = 1,
    max_records: int = 10,
    *,
    body: st.SearchStrategy[str] | None = None,
    fifo: bool | None = None,
) -> st.SearchStrategy[Event]:
    """SQS events: a batch of ``min_records`` to ``max_records`` messages from one queue.

    ``body`` draws each message body (default: JSON documents, sometimes plain text, in the
    characters SQS accepts). ``fifo=True`` draws from a ``.fifo`` queue, with
    ``MessageGroupId``, ``MessageDeduplicationId`` and rising ``SequenceNumber`` attributes;
    ``False`` from a standard queue; ``None`` either. Each record has ``SentTimestamp`` and
    ``ApproximateFirstReceiveTimestamp`` as epoch-millisecond strings, ``md5OfBody`` the MD5 of
    its body, and up to three ``messageAttributes`` (``String``, ``Number`` or ``Binary``,
    sometimes with a custom label) with the ``md5OfMessageAttributes`` SQS would compute.

    A ``Binary`` attribute has no ``stringValue`` key (and a ``String`` one no
    ``binaryValue``), as in real events: Powertools' ``SQSMessageAttribute.string_value``
    raises ``KeyError`` on it, so check ``data_type`` first.

    Example::

        @given(sqs_events(max_records=5, body=st.builds(json.dumps, st.fixed_dictionaries(
            {"order_id": st.integers(1)}))))
        def test_every_message_is_processed(event):
            result = handler(event, FakeLambdaContext())
            assert result == {"batchItemFailures": []}
    """
    _check_batch(min_records, max_records)
    return _sqs_events(min_records, max_records, body, fifo)


# -- SNS ------------------------------------------------------------------------------


@st.composite
def _sns_message_attribute(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(["String", "Number", "Binary", "String.Array"]))
    if kind == "Binary":
        value = _b64(draw(st.binary(min_size=1, max_size=24)))
    elif kind == "Number":
        value = draw(_number_text)
    elif kind == "String.Array":
        value = json.dumps(draw(st.lists(st.text(max_size=8) | st.integers(), max_size=3)))
    else:
        value = draw(_message_text)
    return {"Type": kind, "Value": value}


_subjects = st.none() | _names(30, " -")
_sns_message_attributes = st.dictionaries(_attribute_names, _sns_message_attribute(), max_size=3)


@st.composite
def _sns_events(
    draw: st.DrawFn,
    messages: st.SearchStrategy[str] | None,
    subjects: st.SearchStrategy[str | None] | None,
) -> Event:
    region = draw(_regions)
    topic_arn = f"arn:aws:sns:{region}:{draw(_account_ids)}:{draw(_names(40, '-_'))}"
    subscription_arn = f"{topic_arn}:{draw(_uuids)}"
    message_id = draw(_uuids)
    endpoint = f"https://sns.{region}.amazonaws.com"
    return {
        # SNS invokes a function with one record at a time.
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": draw(subjects if subjects is not None else _subjects),
                    "Message": draw(messages if messages is not None else _message_bodies),
                    "Timestamp": _iso_ms(draw(_instants)),
                    "SignatureVersion": "1",
                    "Signature": _b64(_blob(message_id, 256)),
                    "SigningCertUrl": (
                        f"{endpoint}/SimpleNotificationService-{_blob(topic_arn, 16).hex()}.pem"
                    ),
                    "UnsubscribeUrl": (
                        f"{endpoint}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
                    ),
                    "MessageAttributes": draw(_sns_message_attributes),
                },
            }
        ]
    }


def sns_events(
    *,
    messages: st.SearchStrategy[str] | None = None,
    subjects: st.SearchStrategy[str | None] | None = None,
) -> st.SearchStrategy[Event]:
    """SNS events: one notification, as SNS delivers them to Lambda.

    ``messages`` draws the ``Message`` (default: JSON documents, sometimes plain text);
    ``subjects`` the ``Subject``, which is ``null`` when the publisher set none (the default
    draws either). ``MessageAttributes`` holds up to three ``String``, ``Number``, ``Binary``
    (base64) or ``String.Array`` (a JSON array in a string) attributes.

    Example::

        @given(sns_events(messages=st.just('{"alarm": "high-cpu"}')))
        def test_alarm_is_forwarded(event):
            assert handler(event, FakeLambdaContext()) == {"forwarded": 1}
    """
    return _sns_events(messages, subjects)


# -- S3 -------------------------------------------------------------------------------

_S3_CREATED = (
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
)
_S3_REMOVED = ("ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated")

_bucket_names = st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.sampled_from(_LOWER_ALNUM),
    st.text(_LOWER_ALNUM + "-", min_size=1, max_size=40),
    st.sampled_from(_LOWER_ALNUM),
)
# Spaces, plus signs, brackets and non-ASCII letters are what URL-encoding in S3 events is
# about: a handler that forgets to decode the key fails on them.
_key_segments = st.text(
    string.ascii_letters + string.digits + " -_.()+=&,@!'" + "éüß日本",
    min_size=1,
    max_size=16,
)
_s3_keys = st.builds(
    lambda folders, stem, extension: "/".join([*folders, stem + extension]),
    st.lists(_key_segments, max_size=3),
    _key_segments,
    st.sampled_from(["", ".jpg", ".json", ".csv", ".gz", ".tar.gz"]),
)


_configuration_ids = _uuids | _names(30)


def _s3_encoded(key: str) -> str:
    # As S3 event notifications encode keys: form-style, spaces as "+", slashes kept.
    return quote_plus(key, safe="/")


@st.composite
def _s3_events(
    draw: st.DrawFn,
    bucket_names: st.SearchStrategy[str] | None,
    keys: st.SearchStrategy[str] | None,
    event_names: st.SearchStrategy[str] | None,
) -> Event:
    bucket = draw(bucket_names if bucket_names is not None else _bucket_names)
    key = draw(keys if keys is not None else _s3_keys)
    event_name = draw(
        event_names if event_names is not None else st.sampled_from(_S3_CREATED + _S3_REMOVED)
    )
    instant = draw(_instants)
    obj: Event = {"key": _s3_encoded(key)}
    # Deletes carry neither size nor eTag.
    if event_name.startswith("ObjectCreated:"):
        size = draw(st.integers(0, 5 * 2**30))
        etag = draw(_fixed(_HEX, 32))
        if event_name.endswith("CompleteMultipartUpload"):
            etag += f"-{draw(st.integers(2, 1000))}"
        obj.update(size=size, eTag=etag)
    if draw(st.booleans()):  # a versioned bucket
        obj["versionId"] = draw(_fixed(string.ascii_letters + string.digits + "._", 32))
    obj["sequencer"] = draw(_fixed("0123456789ABCDEF", 18))
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": draw(_regions),
                "eventTime": _iso_ms(instant),
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:" + draw(_fixed(_UPPER_ALNUM, 21))},
                "requestParameters": {"sourceIPAddress": draw(_ipv4s)},
                "responseElements": {
                    "x-amz-request-id": draw(_fixed("0123456789ABCDEF", 16)),
                    "x-amz-id-2": _b64(draw(st.binary(min_size=56, max_size=56))),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": draw(_configuration_ids),
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": draw(_fixed(_UPPER_ALNUM, 14))},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def s3_events(
    *,
    bucket_names: st.SearchStrategy[str] | None = None,
    keys: st.SearchStrategy[str] | None = None,
    event_names: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Event]:
    """S3 event notifications: one record, an object created or removed.

    ``keys`` draws object keys as you would name them (``"photos/red flower.jpg"``); the event
    carries them URL-encoded as S3 sends them (``"photos/red+flower.jpg"``), so a handler must
    decode (Powertools' ``S3Event.object_key`` does; ``record.s3.get_object.key`` does not).
    The default keys are full of spaces, plus signs and non-ASCII letters. ``event_names``
    draws the ``eventName`` (default: ``ObjectCreated:*`` and ``ObjectRemoved:*``);
    ``ObjectRemoved`` objects have no ``size`` or ``eTag``, as in real events.

    Example::

        @given(s3_events(keys=st.just("in/report 2024.csv"),
                         event_names=st.just("ObjectCreated:Put")))
        def test_report_is_imported(event):
            assert handler(event, FakeLambdaContext()) == {"imported": "in/report 2024.csv"}
    """
    return _s3_events(bucket_names, keys, event_names)


# -- EventBridge ----------------------------------------------------------------------

_WORDS = ("Order", "Payment", "User", "Invoice", "Shipment", "Created", "Updated", "Deleted")
_detail_types = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3).map(" ".join)
_sources = st.one_of(
    st.builds("com.{}.{}".format, _names(12), _names(12)),
    st.sampled_from(["aws.ec2", "aws.s3", "aws.events", "aws.codepipeline", "aws.health"]),
)
_RESOURCE_KINDS = (
    ("ec2", "instance"),
    ("ecs", "task"),
    ("states", "execution"),
    ("ssm", "document"),
)
_resources = st.lists(st.tuples(st.sampled_from(_RESOURCE_KINDS), _names(20)), max_size=2)


@st.composite
def _eventbridge_events(
    draw: st.DrawFn,
    detail: st.SearchStrategy[dict[str, Any]] | None,
    detail_types: st.SearchStrategy[str] | None,
    sources: st.SearchStrategy[str] | None,
) -> Event:
    region = draw(_regions)
    account_id = draw(_account_ids)
    resources = [
        f"arn:aws:{service}:{region}:{account_id}:{kind}/{name}"
        for (service, kind), name in draw(_resources)
    ]
    event: Event = {
        "version": "0",
        "id": draw(_uuids),
        "detail-type": draw(detail_types if detail_types is not None else _detail_types),
        "source": draw(sources if sources is not None else _sources),
        "account": account_id,
        "time": _iso_s(draw(_instants)),
        "region": region,
        "resources": resources,
        "detail": draw(detail if detail is not None else _json_objects),
    }
    if draw(st.integers(0, 9)) == 0:  # a replay from an archive says so
        event["replay-name"] = draw(_names(20))
    return event


def eventbridge_events(
    detail: st.SearchStrategy[dict[str, Any]] | None = None,
    *,
    detail_types: st.SearchStrategy[str] | None = None,
    sources: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Event]:
    """EventBridge events, as a rule delivers them to a Lambda target.

    ``detail`` draws the ``detail`` object (default: any small JSON object), ``detail_types``
    the ``detail-type`` (default: phrases such as ``"Order Placed"``), ``sources`` the
    ``source`` (default: ``com.<company>.<service>`` or an ``aws.*`` service). ``time`` has
    second precision, as EventBridge sends it; one event in ten or so is a replay with a
    ``replay-name``.

    Example::

        orders = st.fixed_dictionaries({"orderId": st.uuids().map(str), "total": st.integers(0)})

        @given(eventbridge_events(orders, detail_types=st.just("Order Placed")))
        def test_order_placed(event):
            assert handler(event, FakeLambdaContext())["orderId"] == event["detail"]["orderId"]
    """
    return _eventbridge_events(detail, detail_types, sources)


# -- DynamoDB Streams -----------------------------------------------------------------


_binary_text = st.binary(max_size=16).map(_b64)


# DynamoDB's typed attribute values: {"S": "..."}, {"N": "1.5"}, {"M": {...}} and the rest.
_attribute_values: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.one_of(
        st.text(max_size=20).map(lambda s: {"S": s}),
        _number_text.map(lambda n: {"N": n}),
        _binary_text.map(lambda b: {"B": b}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        # Sets are never empty and never repeat a member.
        st.lists(st.text(max_size=10), min_size=1, max_size=4, unique=True).map(
            lambda v: {"SS": v}
        ),
        st.lists(_number_text, min_size=1, max_size=4, unique=True).map(lambda v: {"NS": v}),
        st.lists(_binary_text, min_size=1, max_size=3, unique=True).map(lambda v: {"BS": v}),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(_names(10, "_"), children, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=8,
)
_item_attributes = st.dictionaries(_names(12, "_"), _attribute_values, max_size=4)


# Key attributes are scalars: a string, a number or binary, never empty.
_key_values = st.one_of(
    st.text(min_size=1, max_size=20).map(lambda s: {"S": s}),
    _number_text.map(lambda n: {"N": n}),
    st.binary(min_size=1, max_size=16).map(lambda b: {"B": _b64(b)}),
)
_key_schemas = st.lists(
    st.sampled_from(("pk", "sk", "id", "userId", "createdAt")), min_size=1, max_size=2, unique=True
)
_STREAM_VIEWS = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY")
_change_kinds = st.sampled_from(("INSERT", "MODIFY", "REMOVE"))


@st.composite
def _dynamodb_stream_events(
    draw: st.DrawFn,
    min_records: int,
    max_records: int,
    stream_view_types: st.SearchStrategy[str] | None,
) -> Event:
    region = draw(_regions)
    table = draw(_names(30, "-_."))
    created = draw(_instants)
    stream_arn = (
        f"arn:aws:dynamodb:{region}:{draw(_account_ids)}:table/{table}/stream/"
        f"{created:%Y-%m-%dT%H:%M:%S}.{created.microsecond // 1000:03d}"
    )
    view = draw(
        stream_view_types if stream_view_types is not None else st.sampled_from(_STREAM_VIEWS)
    )
    key_names = draw(_key_schemas)
    instant = created + timedelta(days=draw(st.integers(0, 365)))
    sequence = draw(st.integers(10**20, 10**27))
    records = []
    for _ in range(draw(st.integers(min_records, max_records))):
        event_name = draw(_change_kinds)
        keys = {name: draw(_key_values) for name in key_names}
        stream: Event = {
            "ApproximateCreationDateTime": int(instant.timestamp()),
            "Keys": keys,
        }
        # An image exists only if the change has one and the stream view includes it.
        if event_name != "INSERT" and view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            stream["OldImage"] = {**draw(_item_attributes), **keys}
        if event_name != "REMOVE" and view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            stream["NewImage"] = {**draw(_item_attributes), **keys}
        sequence += draw(st.integers(1, 10**9))
        stream["SequenceNumber"] = str(sequence)
        stream["SizeBytes"] = len(json.dumps(stream, separators=(",", ":")))
        stream["StreamViewType"] = view
        records.append(
            {
                "eventID": draw(_fixed(_HEX, 32)),
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": stream,
                "eventSourceARN": stream_arn,
            }
        )
        instant += timedelta(seconds=draw(st.integers(0, 30)))
    return {"Records": records}


def dynamodb_stream_events(
    min_records: int = 1,
    max_records: int = 10,
    *,
    stream_view_types: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Event]:
    """DynamoDB Streams events: ``min_records`` to ``max_records`` changes to one table.

    Each record is an ``INSERT``, ``MODIFY`` or ``REMOVE`` with ``Keys`` and, as the stream
    view type (``stream_view_types``, default any of the four) and the change allow,
    ``NewImage`` and ``OldImage`` in DynamoDB's typed format (``{"S": ...}``, ``{"N": "1.5"}``,
    ``{"B": "<base64>"}``, sets, lists and maps, nested). Images contain the keys.
    ``ApproximateCreationDateTime`` is in epoch seconds; sequence numbers rise.

    Powertools' ``StreamRecord.new_image`` turns ``N`` into ``Decimal`` but leaves ``B`` as the
    base64 string the event holds (its docstring promises ``bytes``).

    Example::

        @given(dynamodb_stream_events(stream_view_types=st.just("NEW_AND_OLD_IMAGES")))
        def test_stream_handler_never_fails(event):
            handler(event, FakeLambdaContext())
    """
    _check_batch(min_records, max_records)
    return _dynamodb_stream_events(min_records, max_records, stream_view_types)


# -- Kinesis --------------------------------------------------------------------------


_kinesis_payloads: st.SearchStrategy[str | bytes] = st.one_of(
    _json_texts, st.text(max_size=60), st.binary(max_size=60)
)
_partition_keys = _uuids | _names(20)


@st.composite
def _kinesis_stream_events(
    draw: st.DrawFn,
    min_records: int,
    max_records: int,
    data: st.SearchStrategy[str | bytes] | None,
) -> Event:
    region = draw(_regions)
    account_id = draw(_account_ids)
    stream_arn = f"arn:aws:kinesis:{region}:{account_id}:stream/{draw(_names(40, '-_.'))}"
    role_arn = f"arn:aws:iam::{account_id}:role/{draw(_names(30, '-_'))}"
    shard = f"shardId-{draw(st.integers(0, 999)):012d}"
    arrival = draw(_instants)
    sequence = draw(st.integers(10**55, 10**56 - 10**30))
    records = []
    for _ in range(draw(st.integers(min_records, max_records))):
        payload = draw(data if data is not None else _kinesis_payloads)
        raw = payload.encode() if isinstance(payload, str) else payload
        sequence += draw(st.integers(1, 10**20))
        arrival += timedelta(milliseconds=draw(st.integers(0, 2_000)))
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": draw(_partition_keys),
                    "sequenceNumber": str(sequence),
                    "data": _b64(raw),
                    # Epoch seconds with a fraction, unlike the milliseconds elsewhere.
                    "approximateArrivalTimestamp": _epoch_ms(arrival) / 1000,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role_arn,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": records}


def kinesis_stream_events(
    min_records: int = 1,
    max_records: int = 10,
    *,
    data: st.SearchStrategy[str | bytes] | None = None,
) -> st.SearchStrategy[Event]:
    """Kinesis Data Streams events: ``min_records`` to ``max_records`` records from one shard.

    ``data`` draws each record's payload, ``str`` (sent UTF-8 encoded) or ``bytes``; the event
    carries it base64-encoded in ``kinesis.data``, as Kinesis does. The default draws JSON
    documents, text and raw bytes, so ``data_as_text()`` is not always possible: pass
    ``data=`` a text strategy if your handler expects text.

    Example::

        readings = st.builds(json.dumps, st.fixed_dictionaries({"celsius": st.floats(-40, 60)}))

        @given(kinesis_stream_events(max_records=50, data=readings))
        def test_readings_are_stored(event):
            assert handler(event, FakeLambdaContext())["stored"] == len(event["Records"])
    """
    _check_batch(min_records, max_records)
    return _kinesis_stream_events(min_records, max_records, data)


# -- all of them ----------------------------------------------------------------------


def any_event() -> st.SearchStrategy[Event]:
    """An event from any of the sources above, with their defaults.

    For handlers that must at least not crash, or not leak, whatever invokes them.

    Example::

        guarded = safehandler.guard(handler, mode="strict")

        @given(any_event())
        def test_handler_survives_any_event(event):
            guarded(event, FakeLambdaContext())
    """
    return st.one_of(
        api_gateway_rest_events(),
        api_gateway_http_events(),
        alb_events(),
        sqs_events(),
        sns_events(),
        s3_events(),
        eventbridge_events(),
        dynamodb_stream_events(),
        kinesis_stream_events(),
    )
