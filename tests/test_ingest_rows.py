"""Decoded OTLP records become otel_logs rows stringified exactly as the collector's ClickHouse exporter does."""

from __future__ import annotations

import math

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from gitaudit.query.ingest.otlp_decode import DecodedRecord, decode_request
from gitaudit.query.ingest.rows import existing_uid, format_double, stringify_any, stringify_attributes, to_row
from gitaudit.query.store.schema import INSERT_COLUMNS


def _record(**overrides) -> DecodedRecord:
    fields = dict(
        time_unix_nano=1_700_000_000_123_456_789,
        observed_time_unix_nano=1_700_000_000_999_999_999,
        severity_number=9,
        severity_text="INFO",
        body="hello",
        attributes={"user.id": "alice"},
        trace_id="0102030405060708090a0b0c0d0e0f10",
        span_id="1112131415161718",
        flags=0x101,
        event_name="git.push",
        resource_attributes={"service.name": "svc", "host.cpu": 4},
        resource_schema_url="https://opentelemetry.io/schemas/1.26.0",
        scope_name="gitaudit",
        scope_version="0.1.0",
        scope_attributes={"scope.flag": True},
        scope_schema_url="https://scope/1",
    )
    fields.update(overrides)
    return DecodedRecord(**fields)


# --------------------------------------------------------------------------- stringify table


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("plain <text> & \n", "plain <text> & \n"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        (b"", ""),
        (b"\x00\x01\xff", "AAH/"),
        (b"hi?>", "aGk/Pg=="),
        ([], "[]"),
        ({}, "{}"),
        ([1, "a", True, None, 2.5], '[1,"a",true,null,2.5]'),
        ({"b": 1, "a": [{"z": None, "y": b"\xff"}]}, '{"a":[{"y":"/w==","z":null}],"b":1}'),
        ({"é": 1, "Z": 2, "a": 3}, '{"Z":2,"a":3,"é":1}'),
        (["<a href='x'>&</a>"], '["\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"]'),
        (['q"b\\s'], '["q\\"b\\\\s"]'),
        (["\b\f\n\r\t\x00\x1f\x7f"], '["\\b\\f\\n\\r\\t\\u0000\\u001f\x7f"]'),
        (["\u2028\u2029é😀"], '["\\u2028\\u2029é😀"]'),
        ([1e21, 1e-7, -0.0, 100.0], "[1e+21,1e-7,-0,100]"),
        ([math.nan], ""),
        ({"k": [math.inf]}, ""),
    ],
)
def test_stringify_any_matches_pcommon_as_string(value, expected):
    """Each AnyValue kind stringifies as pcommon Value.AsString() (Go json.Marshal for arrays and maps)."""
    assert stringify_any(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12.5, "12.5"),
        (1.0, "1"),
        (100.0, "100"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (0.0, "0"),
        (-0.0, "-0"),
        (123456789.0, "123456789"),
        (1e20, "100000000000000000000"),
        (9.999999999999999e20, "999999999999999900000"),
        (1e21, "1e+21"),
        (-1.5e300, "-1.5e+300"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (1e-6, "0.000001"),
        (1.234e-5, "0.00001234"),
        (9.99e-7, "9.99e-7"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (-1e-100, "-1e-100"),
        (5e-324, "5e-324"),
    ],
)
def test_format_double_is_go_es6_number_format(value, expected):
    """Finite doubles format as Go's float64AsString: shortest digits, fixed in [1e-6, 1e21), else e-notation."""
    assert format_double(value) == expected
    assert stringify_any(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, "json: unsupported value: NaN"),
        (math.inf, "json: unsupported value: +Inf"),
        (-math.inf, "json: unsupported value: -Inf"),
    ],
)
def test_non_finite_doubles_use_pdata_text(value, expected):
    """NaN and infinities at top level give pdata's exact 'json: unsupported value' text."""
    assert stringify_any(value) == expected


def test_format_double_round_trips():
    """The chosen digits always parse back to the same double."""
    for value in [1 / 3, 2 / 3e-9, 6.02214076e23, 1.1e-6, 4.35e-7, 123.456e15, 2.0**-1074, 2.0**1023]:
        for signed in (value, -value):
            assert float(format_double(signed)) == signed


def test_stringify_attributes_maps_every_value():
    """An attribute map becomes str -> str with each value stringified."""
    assert stringify_attributes({"a": 1, "b": [True], "c": None}) == {"a": "1", "b": "[true]", "c": ""}


# --------------------------------------------------------------------------- rows


def test_to_row_follows_insert_columns():
    """to_row yields INSERT_COLUMNS in order with collector values and log.record.uid set."""
    row = dict(zip(INSERT_COLUMNS, to_row(_record(), "0190-uid"), strict=True))
    assert row == {
        "Timestamp": 1_700_000_000_123_456_789,
        "TraceId": "0102030405060708090a0b0c0d0e0f10",
        "SpanId": "1112131415161718",
        "TraceFlags": 1,
        "SeverityText": "INFO",
        "SeverityNumber": 9,
        "ServiceName": "svc",
        "Body": "hello",
        "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1.26.0",
        "ResourceAttributes": {"service.name": "svc", "host.cpu": "4"},
        "ScopeSchemaUrl": "https://scope/1",
        "ScopeName": "gitaudit",
        "ScopeVersion": "0.1.0",
        "ScopeAttributes": {"scope.flag": "true"},
        "LogAttributes": {"user.id": "alice", "log.record.uid": "0190-uid"},
        "EventName": "git.push",
    }


def test_to_row_service_name_and_body_edge_cases():
    """Missing service.name is ''; a non-string one is stringified; an empty body is ''; map bodies are JSON."""
    row = dict(zip(INSERT_COLUMNS, to_row(_record(resource_attributes={}, body=None), "u"), strict=True))
    assert (row["ServiceName"], row["Body"]) == ("", "")
    row = dict(zip(INSERT_COLUMNS, to_row(_record(resource_attributes={"service.name": 7}, body={"b": 1}), "u")))
    assert (row["ServiceName"], row["Body"]) == ("7", '{"b":1}')


def test_to_row_uid_replaces_the_attribute():
    """The uid argument is what LogAttributes carries, whatever the record held under that key."""
    record = _record(attributes={"log.record.uid": 12345})
    assert existing_uid(record) is None
    row = dict(zip(INSERT_COLUMNS, to_row(record, "fresh"), strict=True))
    assert row["LogAttributes"] == {"log.record.uid": "fresh"}


def test_existing_uid_returns_a_senders_string_uid():
    """A non-empty string log.record.uid is the record's own uid; empty or absent is None."""
    assert existing_uid(_record(attributes={"log.record.uid": "0190abc"})) == "0190abc"
    assert existing_uid(_record(attributes={"log.record.uid": ""})) is None
    assert existing_uid(_record(attributes={})) is None


def test_to_row_does_not_mutate_the_record():
    """Building a row leaves the record's attributes untouched."""
    record = _record()
    to_row(record, "u")
    assert record.attributes == {"user.id": "alice"}


def test_sdk_record_to_row_end_to_end():
    """A record from the real SDK and OTLP encoder becomes the row the collector would write."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource({"service.name": "gitaudit-test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1))))
    provider.get_logger("scope", "2.0").emit(
        LogRecord(
            timestamp=1_700_000_000_000_000_001,
            context=ctx,
            severity_number=SeverityNumber.ERROR,
            body={"msg": "push failed", "code": 128},
            attributes={"log.record.uid": "0190-sender", "git.exit_code": 128, "audit.duration_ms": 12.5},
            event_name="git.push",
        )
    )
    provider.shutdown()
    body = encode_logs(exporter.get_finished_logs()).SerializeToString()
    (record,) = decode_request(body, "application/x-protobuf", None).records
    row = dict(zip(INSERT_COLUMNS, to_row(record, existing_uid(record)), strict=True))
    assert row["Timestamp"] == 1_700_000_000_000_000_001
    assert (row["TraceId"], row["SpanId"], row["TraceFlags"]) == ("0" * 29 + "abc", "0" * 13 + "def", 1)
    assert (row["SeverityNumber"], row["ServiceName"], row["EventName"]) == (17, "gitaudit-test", "git.push")
    assert row["Body"] == '{"code":128,"msg":"push failed"}'
    assert row["LogAttributes"] == {
        "log.record.uid": "0190-sender",
        "git.exit_code": "128",
        "audit.duration_ms": "12.5",
    }
    assert (row["ScopeName"], row["ScopeVersion"]) == ("scope", "2.0")
