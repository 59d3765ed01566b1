"""The public event strategies: JSON all the way down, and read by Powertools as real events are.

Each test draws the values it then reads back (a body, a path, an object key) and hands them
to the strategy, so what Powertools returns is checked against what went in, not against the
event it came from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    ALBEvent,
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    DynamoDBStreamEvent,
    EventBridgeEvent,
    KinesisStreamEvent,
    S3Event,
    SNSEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecordEventName,
    StreamViewType,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from safehandler import strategies as events
from safehandler.strategies import _md5_of_message_attributes

# Enough to walk every branch of a strategy, few enough that the file runs in seconds.
FAST = settings(max_examples=50, deadline=None)

METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
JSON_OBJECTS = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    max_size=4,
)
PATHS = st.lists(st.text("abcxyz019-_", min_size=1, max_size=8), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


def round_trips(event: dict[str, Any]) -> None:
    """Strict JSON (no NaN, no tuples, no bytes) that comes back equal."""
    assert json.loads(json.dumps(event, allow_nan=False)) == event


def grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name, []).append(value)
    return result


def fill_template(resource: str, parameters: dict[str, str] | None) -> str:
    for name, value in (parameters or {}).items():
        resource = resource.replace("{" + name + "}", value).replace("{" + name + "+}", value)
    return resource


def test_public_api_is_exactly_all() -> None:
    assert sorted(events.__all__) == [
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
    for name in events.__all__:
        assert getattr(events, name).__doc__
        assert "Example::" in getattr(events, name).__doc__


def test_importing_safehandler_does_not_import_hypothesis() -> None:
    code = (
        "import sys, safehandler\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] == 'hypothesis' or m == 'safehandler.strategies'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"


# -- API Gateway REST -----------------------------------------------------------------


@FAST
@given(st.data())
def test_rest_events_carry_the_method_and_json_body(data: st.DataObject) -> None:
    method = data.draw(METHODS)
    payload = data.draw(JSON_OBJECTS)
    event = data.draw(
        events.api_gateway_rest_events(methods=st.just(method), body=st.just(json.dumps(payload)))
    )
    round_trips(event)
    parsed = APIGatewayProxyEvent(event)
    assert parsed.http_method == parsed.request_context.http_method == method
    assert parsed.json_body == payload
    assert parsed.is_base64_encoded is False
    assert parsed.headers["content-type"] == "application/json"
    assert int(parsed.headers["content-length"]) == len(json.dumps(payload).encode())


@FAST
@given(events.api_gateway_rest_events())
def test_rest_events_are_consistent(event: dict[str, Any]) -> None:
    round_trips(event)
    parsed = APIGatewayProxyEvent(event)
    context = parsed.request_context
    assert "version" not in event  # REST APIs send none
    assert fill_template(parsed.resource, event["pathParameters"]) == parsed.path
    assert context.resource_path == parsed.resource
    assert context.path == f"/{context.stage}{parsed.path}"
    assert context.domain_name == parsed.headers["host"]
    assert context.domain_name.startswith(f"{context.api_id}.execute-api.")
    assert context.identity.source_ip == parsed.headers["x-forwarded-for"]
    assert context.identity.user_agent == parsed.headers["user-agent"]
    datetime.strptime(context.request_time or "", "%d/%b/%Y:%H:%M:%S %z")
    assert isinstance(context.request_time_epoch, int)
    assert len(context.account_id) == 12
    # headers hold the last of each multiValueHeaders list.
    assert parsed.multi_value_headers
    for name, values in parsed.multi_value_headers.items():
        assert parsed.headers[name] == values[-1]
    if parsed.multi_value_query_string_parameters:
        for name, values in parsed.multi_value_query_string_parameters.items():
            assert parsed.query_string_parameters[name] == values[-1]
    else:
        assert event["queryStringParameters"] is None
    if event["body"] is None:
        assert not event["isBase64Encoded"]
        assert parsed.json_body is None
    elif parsed.is_base64_encoded:
        assert parsed.headers["content-type"] == "application/octet-stream"
        assert len(base64.b64decode(event["body"])) == int(parsed.headers["content-length"])
    else:
        assert parsed.decoded_body == event["body"]


# -- API Gateway HTTP API -------------------------------------------------------------


@FAST
@given(st.data())
def test_http_events_carry_the_method_and_path(data: st.DataObject) -> None:
    method = data.draw(METHODS)
    path = data.draw(PATHS)
    payload = data.draw(JSON_OBJECTS)
    event = data.draw(
        events.api_gateway_http_events(
            methods=st.just(method), paths=st.just(path), body=st.just(json.dumps(payload))
        )
    )
    round_trips(event)
    parsed = APIGatewayProxyEventV2(event)
    assert parsed.request_context.http.method == parsed.http_method == method
    assert parsed.path == path  # Powertools strips a named stage again
    stage = parsed.request_context.stage
    assert parsed.raw_path == (path if stage == "$default" else f"/{stage}{path}")
    assert parsed.request_context.http.path == parsed.raw_path
    assert parsed.json_body == payload


@FAST
@given(events.api_gateway_http_events())
def test_http_events_are_consistent(event: dict[str, Any]) -> None:
    round_trips(event)
    parsed = APIGatewayProxyEventV2(event)
    assert parsed.version == "2.0"
    assert parsed.route_key == parsed.request_context.route_key
    assert parsed.headers
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in parsed.headers
    assert ("cookies" in event) == bool(parsed.cookies)
    assert parsed.request_context.http.source_ip == parsed.headers["x-forwarded-for"]
    decoded = grouped(parse_qsl(parsed.raw_query_string, keep_blank_values=True))
    assert parsed.query_string_parameters == {k: ",".join(v) for k, v in decoded.items()}
    assert ("queryStringParameters" in event) == bool(decoded)
    assert ("pathParameters" in event) == ("{" in parsed.route_key)
    if "body" not in event:
        assert parsed.body is None
        assert not parsed.is_base64_encoded
    elif parsed.is_base64_encoded:
        assert len(base64.b64decode(event["body"])) == int(parsed.headers["content-length"])
    else:
        assert parsed.decoded_body == event["body"]


# -- ALB ------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_alb_events_carry_the_method_and_body(data: st.DataObject) -> None:
    method = data.draw(METHODS)
    path = data.draw(PATHS)
    text = data.draw(st.text(min_size=1))
    multi_value = data.draw(st.booleans())
    event = data.draw(
        events.alb_events(
            methods=st.just(method),
            paths=st.just(path),
            body=st.just(text),
            multi_value=multi_value,
        )
    )
    round_trips(event)
    parsed = ALBEvent(event)
    assert parsed.http_method == method
    assert parsed.path == path
    assert parsed.decoded_body == text
    assert parsed.request_context.elb_target_group_arn.startswith("arn:aws:elasticloadbalancing:")
    # One pair of fields or the other, never both.
    assert ("multiValueHeaders" in event) is multi_value
    assert ("headers" in event) is not multi_value
    assert ("multiValueQueryStringParameters" in event) is multi_value
    assert ("queryStringParameters" in event) is not multi_value
    host = parsed.multi_value_headers["host"][-1] if multi_value else parsed.headers["host"]
    assert host.endswith(".elb.amazonaws.com")


@FAST
@given(events.alb_events())
def test_alb_events_pass_the_query_string_encoded(event: dict[str, Any]) -> None:
    round_trips(event)
    parsed = ALBEvent(event)
    query = parsed.resolved_query_string_parameters
    for name, values in query.items():
        for text in (name, *values):
            assert " " not in text  # still percent-encoded
            unquote(text, errors="strict")
    if not parsed.body:
        assert event["body"] == ""


@pytest.mark.parametrize(
    ("strategy", "data_class"),
    [
        (events.api_gateway_rest_events, APIGatewayProxyEvent),
        (events.api_gateway_http_events, APIGatewayProxyEventV2),
        (events.alb_events, ALBEvent),
    ],
)
@FAST
@given(data=st.data())
def test_binary_bodies_are_base64_encoded(
    strategy: Any, data_class: Any, data: st.DataObject
) -> None:
    payload = data.draw(st.binary(min_size=1))
    event = data.draw(strategy(methods=st.just("POST"), body=st.just(payload)))
    round_trips(event)
    parsed = data_class(event)
    assert parsed.is_base64_encoded is True
    assert base64.b64decode(parsed.body) == payload
    assert parsed.headers.get("content-type") in (None, "application/octet-stream")


# -- SQS ------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_sqs_events_carry_the_bodies(data: st.DataObject) -> None:
    low = data.draw(st.integers(1, 4))
    high = data.draw(st.integers(low, 8))
    text = data.draw(st.text(min_size=1))
    event = data.draw(events.sqs_events(low, high, body=st.just(text)))
    round_trips(event)
    records = list(SQSEvent(event).records)
    assert low <= len(records) <= high
    assert [record.body for record in records] == [text] * len(records)
    assert len({record.message_id for record in records}) == len(records)


@FAST
@given(events.sqs_events(1, 4))
def test_sqs_events_are_consistent(event: dict[str, Any]) -> None:
    round_trips(event)
    records = list(SQSEvent(event).records)
    assert len({record.event_source_arn for record in records}) == 1  # one queue per batch
    sequence_numbers = []
    for record in records:
        assert record.event_source == "aws:sqs"
        assert record.event_source_arn.split(":")[3] == record.aws_region
        assert record.queue_url.startswith(f"https://sqs.{record.aws_region}.amazonaws.com/")
        assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()
        attributes = record.attributes
        assert int(attributes.approximate_first_receive_timestamp) >= int(attributes.sent_timestamp)
        if record.event_source_arn.endswith(".fifo"):
            assert attributes.message_group_id
            assert attributes.message_deduplication_id
            sequence_numbers.append(int(attributes.sequence_number or ""))
        else:
            assert attributes.sequence_number is None
        for name, attribute in record.message_attributes.items():
            kind = attribute.data_type.partition(".")[0]
            assert kind in ("String", "Number", "Binary")
            if kind == "Binary":
                assert "stringValue" not in attribute  # so .string_value raises
                base64.b64decode(attribute.binary_value or "", validate=True)
            else:
                assert attribute.string_value
            assert record.message_attributes[name] == attribute
        if record.message_attributes:
            assert record["md5OfMessageAttributes"] == _md5_of_message_attributes(
                record["messageAttributes"]
            )
    assert sequence_numbers == sorted(sequence_numbers)


def test_md5_of_message_attributes_matches_sqs() -> None:
    # Digests SQS returns for these attributes, as published with aws-md5-of-message-attributes.
    text = {"attribName1": {"dataType": "String", "stringValue": "attribValue 1"}}
    number = {
        "customNumberTypeAttrib": {
            "dataType": "Number.float",
            "stringValue": "4563442423554324324264524243.32543234",
        }
    }
    binary = {
        "binaryAttribute": {
            "dataType": "Binary",
            "binaryValue": base64.b64encode(b"Hello binary world!").decode(),
        }
    }
    assert _md5_of_message_attributes(text) == "19e27d4e946b072f3f58da80d94fd778"
    assert _md5_of_message_attributes(number) == "9fe1b90bbd9965bdf77bac517c7d2495"
    assert _md5_of_message_attributes(binary) == "31a92b15d92f8db860eda32aceb656c3"
    assert (
        _md5_of_message_attributes({**text, **number, **binary})
        == "c932db14a896c663f83c260297d594ff"
    )


@pytest.mark.parametrize(
    "strategy", [events.sqs_events, events.dynamodb_stream_events, events.kinesis_stream_events]
)
@pytest.mark.parametrize(("low", "high"), [(0, 1), (3, 2), (1, 10_001)])
def test_batch_bounds_are_checked(strategy: Any, low: int, high: int) -> None:
    with pytest.raises(InvalidArgument, match=f"min_records={low}, max_records={high}"):
        strategy(low, high)


# -- SNS ------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_sns_events_carry_the_message(data: st.DataObject) -> None:
    message = data.draw(st.text(min_size=1))
    subject = data.draw(st.none() | st.text(min_size=1))
    event = data.draw(events.sns_events(messages=st.just(message), subjects=st.just(subject)))
    round_trips(event)
    parsed = SNSEvent(event)
    assert parsed.sns_message == message
    sns = parsed.record.sns
    assert sns.subject == subject
    assert sns.get_type == "Notification"
    assert parsed.record.event_subscription_arn.startswith(sns.topic_arn + ":")
    region = sns.topic_arn.split(":")[3]
    assert sns.unsubscribe_url.startswith(f"https://sns.{region}.amazonaws.com/")
    datetime.strptime(sns.timestamp, "%Y-%m-%dT%H:%M:%S.%f%z")
    for attribute in sns.message_attributes.values():
        assert attribute.get_type in ("String", "Number", "Binary", "String.Array")
        if attribute.get_type == "String.Array":
            assert isinstance(json.loads(attribute.value), list)
        elif attribute.get_type == "Binary":
            base64.b64decode(attribute.value, validate=True)


# -- S3 -------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_s3_events_carry_the_key_url_encoded(data: st.DataObject) -> None:
    key = data.draw(st.text(min_size=1, max_size=40))
    bucket = data.draw(st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True))
    event = data.draw(events.s3_events(bucket_names=st.just(bucket), keys=st.just(key)))
    round_trips(event)
    parsed = S3Event(event)
    assert parsed.bucket_name == bucket
    assert parsed.object_key == key  # decoded
    assert parsed.record.s3.bucket.arn == f"arn:aws:s3:::{bucket}"
    raw = parsed.record.s3.get_object.key
    assert " " not in raw
    if key.isalnum() and key.isascii():
        assert raw == key


@FAST
@given(events.s3_events())
def test_s3_events_are_consistent(event: dict[str, Any]) -> None:
    round_trips(event)
    record = S3Event(event).record
    obj = record.s3.get_object
    datetime.strptime(record.event_time, "%Y-%m-%dT%H:%M:%S.%f%z")
    if record.event_name.startswith("ObjectCreated:"):
        assert obj.size >= 0
        assert obj.etag
    else:
        assert record.event_name.startswith("ObjectRemoved:")
        assert "size" not in obj  # so S3Object.size raises, as on a real delete
        assert obj.etag == ""
    assert obj.sequencer


# -- EventBridge ----------------------------------------------------------------------


@FAST
@given(st.data())
def test_eventbridge_events_carry_the_detail(data: st.DataObject) -> None:
    detail = data.draw(JSON_OBJECTS)
    detail_type = data.draw(st.text(min_size=1))
    source = data.draw(st.text(min_size=1))
    event = data.draw(
        events.eventbridge_events(
            st.just(detail), detail_types=st.just(detail_type), sources=st.just(source)
        )
    )
    round_trips(event)
    parsed = EventBridgeEvent(event)
    assert parsed.detail == detail
    assert parsed.detail_type == detail_type
    assert parsed.source == source
    assert parsed.version == "0"
    assert datetime.strptime(parsed.time, "%Y-%m-%dT%H:%M:%SZ")
    for arn in parsed.resources:
        assert arn.split(":")[3:5] == [parsed.region, parsed.account]


# -- DynamoDB Streams -----------------------------------------------------------------


def plain(value: dict[str, Any]) -> Any:
    """An independent reading of a typed attribute value, as Powertools should read it."""
    ((kind, inner),) = value.items()
    match kind:
        case "S" | "B" | "BOOL":  # B stays the base64 text the event holds
            return inner
        case "N":
            return Decimal(inner)
        case "NULL":
            assert inner is True
            return None
        case "SS" | "BS":
            assert len(set(inner)) == len(inner) > 0
            return set(inner)
        case "NS":
            assert len(set(inner)) == len(inner) > 0
            return {Decimal(n) for n in inner}
        case "L":
            return [plain(item) for item in inner]
        case "M":
            return {name: plain(item) for name, item in inner.items()}
    raise AssertionError(f"not a DynamoDB type: {kind}")


@FAST
@given(st.data())
def test_dynamodb_stream_images_deserialise(data: st.DataObject) -> None:
    low = data.draw(st.integers(1, 2))
    high = data.draw(st.integers(low, 4))
    event = data.draw(events.dynamodb_stream_events(low, high))
    round_trips(event)
    records = list(DynamoDBStreamEvent(event).records)
    assert low <= len(records) <= high
    sequence_numbers = []
    for record in records:
        stream = record.dynamodb
        assert stream is not None
        raw = record["dynamodb"]
        assert stream.keys == {name: plain(value) for name, value in raw["Keys"].items()}
        assert stream.new_image == {k: plain(v) for k, v in raw.get("NewImage", {}).items()}
        assert stream.old_image == {k: plain(v) for k, v in raw.get("OldImage", {}).items()}
        for image in (stream.new_image, stream.old_image):
            assert not image or stream.keys.items() <= image.items()
        view = stream.stream_view_type
        assert view is not None
        if record.event_name is DynamoDBRecordEventName.INSERT:
            assert "OldImage" not in raw
        if record.event_name is DynamoDBRecordEventName.REMOVE:
            assert "NewImage" not in raw
        if view is StreamViewType.KEYS_ONLY:
            assert "NewImage" not in raw
            assert "OldImage" not in raw
        assert record.event_source_arn is not None
        assert record.event_source_arn.split(":")[3] == record.aws_region
        assert stream.approximate_creation_date_time is not None
        sequence_numbers.append(int(stream.sequence_number or ""))
    assert sequence_numbers == sorted(sequence_numbers)


@FAST
@given(events.dynamodb_stream_events(1, 3, stream_view_types=st.just("NEW_AND_OLD_IMAGES")))
def test_dynamodb_modify_records_have_both_images(event: dict[str, Any]) -> None:
    round_trips(event)
    for record in DynamoDBStreamEvent(event).records:
        if record.event_name is DynamoDBRecordEventName.MODIFY:
            assert {"NewImage", "OldImage"} <= set(record["dynamodb"])


# -- Kinesis --------------------------------------------------------------------------


@FAST
@given(st.data())
def test_kinesis_records_decode_to_the_data(data: st.DataObject) -> None:
    text = data.draw(st.text())
    low = data.draw(st.integers(1, 4))
    high = data.draw(st.integers(low, 8))
    event = data.draw(events.kinesis_stream_events(low, high, data=st.just(text)))
    round_trips(event)
    records = list(KinesisStreamEvent(event).records)
    assert low <= len(records) <= high
    assert records[0].kinesis.data_as_text() == text
    assert all(record.kinesis.data_as_text() == text for record in records)
    sequence_numbers = [int(record.kinesis.sequence_number) for record in records]
    assert sequence_numbers == sorted(sequence_numbers)
    for record in records:
        assert record.event_id.endswith(":" + record.kinesis.sequence_number)
        assert record.event_source_arn.split(":")[3] == record.aws_region
        assert isinstance(record.kinesis.approximate_arrival_timestamp, float)


@FAST
@given(st.data())
def test_kinesis_binary_data_is_base64(data: st.DataObject) -> None:
    payload = data.draw(st.binary())
    event = data.draw(events.kinesis_stream_events(data=st.just(payload)))
    round_trips(event)
    for record in KinesisStreamEvent(event).records:
        assert record.kinesis.data_as_bytes() == payload


# -- all of them ----------------------------------------------------------------------


@FAST
@given(events.any_event())
def test_any_event_is_json(event: dict[str, Any]) -> None:
    round_trips(event)
