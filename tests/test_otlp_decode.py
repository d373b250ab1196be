"""OTLP/HTTP log request decoding: real SDK encodings in, records or 4xx errors out."""

from __future__ import annotations

import base64
import copy
import gzip
import json

import pytest
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from gitaudit.query.ingest import otlp_decode
from gitaudit.query.ingest.errors import OTLPDecodeError
from gitaudit.query.ingest.otlp_decode import (
    MAX_VALUE_DEPTH,
    DecodedRecord,
    DecodedRequest,
    decode_request,
    encode_response,
    encode_status_error,
)
from gitaudit.query.ingest.rows import to_row

PB = "application/x-protobuf"
JS = "application/json"
NOW = 1_800_000_000_000_000_000
TRACE_ID = 0x0102030405060708090A0B0C0D0E0F10
SPAN_ID = 0x1112131415161718
TS = 1_700_000_000_123_456_789
OBSERVED = 1_700_000_000_999_999_999
BODY = {"msg": "pushed <main>", "n": 3, "list": [1, "a", 2.5, True], "raw": b"\x00\x01", "nested": {"k": [None]}}
ATTRS = {
    "user.id": "alice",
    "count": 7,
    "big": -(2**63),
    "ratio": 0.25,
    "ok": True,
    "tags": ["a", "b"],
    "blob": b"\xff\x00",
    "m": {"k": [1, {"deep": "x"}]},
}


# --------------------------------------------------------------------------- helpers


def _sdk_request() -> ExportLogsServiceRequest:
    """Emit three records through the real SDK and encode them with the real OTLP encoder."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource({"service.name": "svc", "service.version": "1.0"}, "https://opentelemetry.io/schemas/1.26.0")
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("gitaudit.test", "1.2.3", schema_url="https://scope/1", attributes={"scope.k": "v"})
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1)))
    ctx = trace.set_span_in_context(span)
    logger.emit(
        LogRecord(
            timestamp=TS,
            observed_timestamp=OBSERVED,
            context=ctx,
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body=BODY,
            attributes=ATTRS,
            event_name="git.push",
        )
    )
    logger.emit(LogRecord(timestamp=TS + 1, observed_timestamp=OBSERVED, body="plain text", event_name="git.clone"))
    logger.emit(LogRecord(timestamp=0, observed_timestamp=OBSERVED + 5, attributes={"only": "attrs"}))
    provider.shutdown()
    return encode_logs(exporter.get_finished_logs())


def _hex_ids(doc: dict, camel: bool = True) -> dict:
    """Rewrite MessageToDict's base64 trace/span ids as hex, as the OTLP JSON mapping requires."""
    doc = copy.deepcopy(doc)
    rl, sl, lr = ("resourceLogs", "scopeLogs", "logRecords") if camel else ("resource_logs", "scope_logs", "log_records")
    ids = ("traceId", "spanId") if camel else ("trace_id", "span_id")
    for resource_logs in doc.get(rl, []):
        for scope_logs in resource_logs.get(sl, []):
            for record in scope_logs.get(lr, []):
                for key in ids:
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return doc


def _otlp_json(request: ExportLogsServiceRequest, **kwargs) -> bytes:
    camel = not kwargs.get("preserving_proto_field_name", False)
    return json.dumps(_hex_ids(MessageToDict(request, **kwargs), camel)).encode()


def _decode(body: bytes, content_type: str = PB, encoding: str | None = None, **kw) -> DecodedRequest:
    return decode_request(body, content_type, encoding, now_ns=NOW, **kw)


def _error(body: bytes, content_type: str | None = JS, encoding: str | None = None, **kw) -> OTLPDecodeError:
    with pytest.raises(OTLPDecodeError) as info:
        decode_request(body, content_type, encoding, now_ns=NOW, **kw)
    return info.value


def _one_record_json(**record) -> bytes:
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()


def _pb_request(*records: PbLogRecord) -> bytes:
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=list(records))])]
    ).SerializeToString()


@pytest.fixture(scope="module")
def sdk_request() -> ExportLogsServiceRequest:
    """The SDK-encoded request shared by the round-trip tests."""
    return _sdk_request()


# --------------------------------------------------------------------------- round trips


def test_protobuf_from_sdk_round_trips_every_field(sdk_request):
    """Records encoded by the real SDK decode with exact body, attributes, ids, ns times, severity, resource, scope."""
    decoded = _decode(sdk_request.SerializeToString())
    assert decoded.rejected == 0 and decoded.response_format == "protobuf"
    first, second, third = decoded.records
    assert first == DecodedRecord(
        time_unix_nano=TS,
        observed_time_unix_nano=OBSERVED,
        severity_number=13,
        severity_text="WARN",
        body=BODY,
        attributes=ATTRS,
        trace_id="0102030405060708090a0b0c0d0e0f10",
        span_id="1112131415161718",
        flags=1,
        event_name="git.push",
        resource_attributes={"service.name": "svc", "service.version": "1.0"},
        resource_schema_url="https://opentelemetry.io/schemas/1.26.0",
        scope_name="gitaudit.test",
        scope_version="1.2.3",
        scope_attributes={"scope.k": "v"},
        scope_schema_url="https://scope/1",
    )
    assert (second.body, second.event_name, second.trace_id, second.span_id) == ("plain text", "git.clone", "", "")
    assert second.time_unix_nano == TS + 1
    assert (third.time_unix_nano, third.body, third.attributes) == (OBSERVED + 5, None, {"only": "attrs"})


def test_json_mapping_decodes_to_the_same_records(sdk_request):
    """MessageToDict + hex ids (the OTLP JSON mapping) decodes to exactly the protobuf records."""
    from_pb = _decode(sdk_request.SerializeToString()).records
    decoded = _decode(_otlp_json(sdk_request, use_integers_for_enums=True), JS)
    assert decoded.response_format == "json"
    assert decoded.records == from_pb


def test_json_accepts_snake_case_names_and_enum_names(sdk_request):
    """Original proto field names and SEVERITY_NUMBER_* names are accepted, as protobuf's json_format does."""
    from_pb = _decode(sdk_request.SerializeToString()).records
    body = _otlp_json(sdk_request, preserving_proto_field_name=True)
    assert b"severity_number" in body and b"SEVERITY_NUMBER_WARN" in body
    assert _decode(body, "Application/JSON; charset=utf-8").records == from_pb


def test_json_64_bit_ints_as_numbers_or_strings():
    """timeUnixNano and intValue decode from JSON numbers and from decimal strings alike."""
    as_numbers = _one_record_json(timeUnixNano=TS, body={"intValue": 2**63 - 1})
    as_strings = _one_record_json(timeUnixNano=str(TS), body={"intValue": str(2**63 - 1)})
    for body in (as_numbers, as_strings):
        (record,) = _decode(body, JS).records
        assert (record.time_unix_nano, record.body) == (TS, 2**63 - 1)
    (record,) = _decode(_one_record_json(timeUnixNano=5.0, body={"intValue": -7.0}), JS).records
    assert (record.time_unix_nano, record.body) == (5, -7)


def test_json_utf8_bom_is_skipped_and_empty_error_message():
    """A UTF-8 byte order mark before the JSON is tolerated; a clean request has an empty error_message."""
    decoded = _decode(b"\xef\xbb\xbf" + _one_record_json(eventName="e"), JS)
    assert [r.event_name for r in decoded.records] == ["e"] and decoded.error_message == ""


def test_json_bytes_double_and_bool_values():
    """bytesValue (std or URL-safe base64, padding optional), special doubles and bools decode to Python values."""
    values = [
        {"bytesValue": "AP8="},
        {"bytesValue": "AP8"},
        {"bytesValue": "_-8"},
        {"doubleValue": "NaN"},
        {"doubleValue": "-Infinity"},
        {"doubleValue": 3},
        {"boolValue": False},
        {},
    ]
    (record,) = _decode(_one_record_json(body={"arrayValue": {"values": values}}), JS).records
    got = record.body
    assert got[:3] == [b"\x00\xff", b"\x00\xff", b"\xff\xef"]
    assert got[3] != got[3] and got[4] == float("-inf") and got[5] == 3.0 and isinstance(got[5], float)
    assert got[6:] == [False, None]


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_gzip_bodies_decode(sdk_request, fmt):
    """A gzip Content-Encoding body decodes to the same records as the plain body."""
    plain = sdk_request.SerializeToString() if fmt == "protobuf" else _otlp_json(sdk_request)
    ctype = PB if fmt == "protobuf" else JS
    assert _decode(gzip.compress(plain), ctype, "gzip").records == _decode(plain, ctype, None).records
    assert _decode(plain, ctype, "identity").records == _decode(plain, ctype, None).records


def test_gzip_multi_member_stream_is_concatenated(sdk_request):
    """A body of two concatenated gzip members decodes as their concatenation (RFC 1952)."""
    plain = sdk_request.SerializeToString()
    body = gzip.compress(plain[:10]) + gzip.compress(plain[10:])
    assert _decode(body, PB, "GZIP").records == _decode(plain).records


def test_unknown_json_fields_are_ignored():
    """Unknown keys at every level are ignored, as OTLP requires of receivers."""
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "a", "value": {"stringValue": "x"}, "x": 1}], "entityRefs": [{}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "s", "futureField": {"a": [1]}},
                        "logRecords": [{"body": {"stringValue": "b", "newKind": 1}, "future": [1, 2], "x": None}],
                    }
                ],
                "somethingNew": True,
            }
        ],
        "extension": "ignored",
    }
    (record,) = _decode(json.dumps(doc).encode(), JS).records
    assert (record.body, record.resource_attributes, record.scope_name) == ("b", {"a": "x"}, "s")


def test_unknown_protobuf_fields_are_ignored():
    """A record carrying a field number unknown to this proto version still decodes."""
    record = PbLogRecord(body=AnyValue(string_value="ok")).SerializeToString() + b"\xf8\x3e\x05"  # field 1000, varint
    scope = b"\x12" + bytes([len(record)]) + record  # ScopeLogs.log_records = 2
    resource = b"\x12" + bytes([len(scope)]) + scope  # ResourceLogs.scope_logs = 2
    body = b"\x0a" + bytes([len(resource)]) + resource  # ExportLogsServiceRequest.resource_logs = 1
    (decoded,) = _decode(body).records
    assert decoded.body == "ok"


def test_empty_protobuf_body_is_an_empty_request():
    """A zero-length protobuf body is a valid, empty ExportLogsServiceRequest."""
    decoded = _decode(b"")
    assert (decoded.records, decoded.rejected) == ([], 0)


# --------------------------------------------------------------------------- timestamps and per-record rejection


def test_timestamp_falls_back_to_observed_then_receive_time():
    """time 0 -> observed time; both 0 -> now_ns, which also fills the observed time."""
    body = _pb_request(
        PbLogRecord(time_unix_nano=0, observed_time_unix_nano=55, event_name="e"),
        PbLogRecord(event_name="e"),
    )
    first, second = _decode(body).records
    assert (first.time_unix_nano, first.observed_time_unix_nano) == (55, 55)
    assert (second.time_unix_nano, second.observed_time_unix_nano) == (NOW, NOW)


def test_all_zero_ids_read_as_absent():
    """An all-zero trace or span id is stored as '' (collector's TraceIDToHexOrEmptyString)."""
    (record,) = _decode(_pb_request(PbLogRecord(trace_id=bytes(16), span_id=bytes(8), event_name="e"))).records
    assert (record.trace_id, record.span_id) == ("", "")


def test_bad_records_are_rejected_and_counted_the_rest_kept():
    """Wrong-length ids, severity outside 0..24 and empty records are rejected one by one; good ones kept."""
    body = _pb_request(
        PbLogRecord(trace_id=b"\x01" * 15, event_name="e"),
        PbLogRecord(event_name="good", trace_id=b"\x01" * 16, span_id=b"\x02" * 8),
        PbLogRecord(span_id=b"\x02" * 9, event_name="e"),
        PbLogRecord(severity_number=25, event_name="e"),
        PbLogRecord(time_unix_nano=5),
        PbLogRecord(body=AnyValue(string_value="")),
    )
    decoded = _decode(body)
    assert [r.event_name for r in decoded.records] == ["good", ""]
    assert decoded.rejected == 4
    assert decoded.rejection_messages == [
        "resourceLogs[0].scopeLogs[0].logRecords[0]: traceId must be 16 bytes or empty, got 15",
        "resourceLogs[0].scopeLogs[0].logRecords[2]: spanId must be 8 bytes or empty, got 9",
        "resourceLogs[0].scopeLogs[0].logRecords[3]: severityNumber must be 0..24, got 25",
        "resourceLogs[0].scopeLogs[0].logRecords[4]: record has no body, no attributes and no eventName",
    ]
    assert decoded.error_message == "; ".join(decoded.rejection_messages)


def test_a_record_at_or_after_2100_is_rejected_by_name():
    """A time at or after 2100-01-01 (no read can reach it; TimestampTime would wrap) rejects that record only."""
    from gitaudit.query.store.time_window import LATEST_TIME_NS

    body = _pb_request(PbLogRecord(time_unix_nano=LATEST_TIME_NS, event_name="late"),
                       PbLogRecord(time_unix_nano=0, observed_time_unix_nano=LATEST_TIME_NS + 5, event_name="late"),
                       PbLogRecord(time_unix_nano=LATEST_TIME_NS - 1, event_name="ok"))
    for decoded in (_decode(body), _decode(json.dumps(MessageToDict(ExportLogsServiceRequest.FromString(body))).encode(),
                                           JS)):
        assert ([r.event_name for r in decoded.records], decoded.rejected) == (["ok"], 2)
        assert decoded.rejection_messages == [
            "resourceLogs[0].scopeLogs[0].logRecords[0]: timeUnixNano is at or after 2100-01-01T00:00:00Z, "
            "the latest event time the store holds",
            "resourceLogs[0].scopeLogs[0].logRecords[1]: observedTimeUnixNano is at or after "
            "2100-01-01T00:00:00Z, the latest event time the store holds"]


def test_json_hex_of_wrong_length_rejects_only_that_record():
    """Valid hex of the wrong length rejects the record, like the same bytes in protobuf."""
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "abcd", "eventName": "e"}, {"eventName": "ok"}]}]}]}
    decoded = _decode(json.dumps(doc).encode(), JS)
    assert ([r.event_name for r in decoded.records], decoded.rejected) == (["ok"], 1)
    assert "traceId must be 16 bytes or empty, got 2" in decoded.rejection_messages[0]


def test_rejection_messages_keep_only_the_first_few():
    """Only MAX_REJECTION_MESSAGES reasons are kept; error_message says how many more."""
    decoded = _decode(_pb_request(*[PbLogRecord(severity_number=99) for _ in range(8)]))
    assert decoded.rejected == 8 and len(decoded.rejection_messages) == otlp_decode.MAX_REJECTION_MESSAGES
    assert decoded.error_message.endswith("; and 3 more rejected")


# --------------------------------------------------------------------------- request-level errors


@pytest.mark.parametrize("ctype", [None, "", "text/plain", "application/protobuf", "application/jsonx"])
def test_unsupported_content_type_is_415(ctype):
    """Any content type but protobuf/JSON is 415, naming the type and the supported ones."""
    err = _error(b"{}", ctype)
    assert err.status_code == 415
    assert "application/x-protobuf" in err.message and "application/json" in err.message
    if ctype:
        assert repr(ctype) in err.message


def test_unsupported_content_encoding_is_415():
    """A content coding other than gzip/identity is 415 naming it."""
    err = _error(b"{}", JS, "br")
    assert (err.status_code, err.message) == (415, "unsupported content encoding 'br'; supported: gzip, identity")


def test_body_over_limit_is_413_with_the_limit():
    """A body larger than max_body_bytes is 413 and the message gives the limit in bytes."""
    err = _error(b"x" * 101, PB, max_body_bytes=100)
    assert (err.status_code, err.message) == (413, "request body is 101 bytes, over the limit of 100 bytes")


def test_gzip_bomb_stops_at_the_decompressed_limit():
    """A small gzip body inflating past max_decompressed_bytes is 413 without inflating it all."""
    bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024))
    assert len(bomb) < 20_000
    err = _error(bomb, PB, "gzip", max_decompressed_bytes=1024 * 1024)
    assert (err.status_code, err.message) == (413, "decompressed body exceeds the limit of 1048576 bytes")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not gzip at all", "malformed gzip body"),
        (gzip.compress(b"{}")[:-6], "malformed gzip body: truncated stream"),
        (gzip.compress(b"{}") + b"garbage!", "malformed gzip body"),
        (b"", "malformed gzip body: empty"),
    ],
)
def test_bad_gzip_is_400(body, needle):
    """Non-gzip, truncated or trailing-garbage gzip bodies are 400 naming gzip."""
    err = _error(body, JS, "gzip")
    assert err.status_code == 400 and needle in err.message


def test_malformed_protobuf_is_400():
    """Bytes that are not an ExportLogsServiceRequest are 400 naming protobuf and the message type."""
    err = _error(b"\xff\xff\xff\xff", PB)
    assert err.status_code == 400
    assert err.message.startswith("malformed protobuf") and "ExportLogsServiceRequest" in err.message


def test_protobuf_with_invalid_utf8_string_is_400():
    """A proto3 string field holding invalid UTF-8 makes the whole request a 400."""
    record = b"\x62\x02\xff\xfe"  # field 12 (event_name), length 2, invalid UTF-8
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    err = _error(b"\x0a" + bytes([len(resource)]) + resource, PB)
    assert err.status_code == 400 and "malformed protobuf" in err.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"resourceLogs": [', "malformed JSON: Expecting value at line 1 column 19"),
        (b"\xff{}", "invalid UTF-8 in JSON body at byte 0"),
        (b'{"resourceLogs": NaN}', "malformed JSON: NaN is not a valid JSON literal"),
        (b"[1, 2]", "request body: expected object, got array"),
        (b'{"resourceLogs": {}}', "resourceLogs: expected array, got object"),
        (b"[" * 100_000, "malformed JSON: nested too deeply"),
        (b'{"a": ' + b"1" * 5000 + b"}", "malformed JSON: a number literal is too long"),
    ],
)
def test_malformed_json_is_400(body, message):
    """Invalid JSON, invalid UTF-8, non-standard literals and wrong shapes are 400 with a precise message."""
    err = _error(body, JS)
    assert (err.status_code, err.message) == (400, message)


P = "resourceLogs[0].scopeLogs[0].logRecords[0]"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"traceId": "xyz"}, f"{P}.traceId: expected 32 hex characters, got 'xyz'"),
        ({"spanId": 12}, f"{P}.spanId: expected 16 hex characters, got number"),
        ({"timeUnixNano": "abc"}, f"{P}.timeUnixNano: expected integer (number or decimal string), got string 'abc'"),
        ({"timeUnixNano": -1}, f"{P}.timeUnixNano: integer '-1' out of range 0..18446744073709551615"),
        ({"flags": True}, f"{P}.flags: expected integer, got boolean"),
        ({"severityNumber": "LOUD"}, f"{P}.severityNumber: unknown SeverityNumber name 'LOUD'"),
        ({"severityText": 3}, f"{P}.severityText: expected string, got number"),
        ({"eventName": "\ud800"}, f"{P}.eventName: string contains a lone UTF-16 surrogate escape (not valid UTF-8)"),
        ({"body": {"boolValue": "yes"}}, f"{P}.body.boolValue: expected boolean, got string 'yes'"),
        ({"body": {"intValue": str(2**63)}}, f"{P}.body.intValue: integer '9223372036854775808' out of range"),
        ({"body": {"bytesValue": "a"}}, f"{P}.body.bytesValue: expected base64, got 'a'"),
        ({"body": {"stringValue": "a", "intValue": 1}}, f"{P}.body: AnyValue has more than one value set"),
        ({"body": "text"}, f"{P}.body: expected object, got string 'text'"),
        (
            {"attributes": [{"key": "k", "value": {"arrayValue": {"values": [{"doubleValue": "x"}]}}}]},
            f"{P}.attributes[0].value.arrayValue.values[0].doubleValue: expected number, got string 'x'",
        ),
        ({"attributes": [{"key": 1}]}, f"{P}.attributes[0].key: expected string, got number"),
        ({"body": {"doubleValue": True}}, f"{P}.body.doubleValue: expected number, got boolean"),
        ({"body": {"doubleValue": 10**400}}, f"{P}.body.doubleValue: number out of range for a double"),
        ({"body": {"bytesValue": 5}}, f"{P}.body.bytesValue: expected base64 string, got number"),
    ],
)
def test_wrong_json_field_types_are_400_naming_the_path(record, message):
    """A field of the wrong type or range is a 400 whose message starts with the field path."""
    err = _error(_one_record_json(**record), JS)
    assert err.status_code == 400 and err.message.startswith(message)


def _nested_json(depth: int) -> dict:
    value: dict = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


def _nested_pb(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


def test_value_nesting_limit_is_the_same_for_both_encodings():
    """MAX_VALUE_DEPTH nested arrays decode in both encodings; one more is a 400 in both."""
    ok_json = _decode(_one_record_json(body=_nested_json(MAX_VALUE_DEPTH)), JS).records[0].body
    ok_pb = _decode(_pb_request(PbLogRecord(body=_nested_pb(MAX_VALUE_DEPTH)))).records[0].body
    assert ok_json == ok_pb
    for err in (
        _error(_one_record_json(body=_nested_json(MAX_VALUE_DEPTH + 1)), JS),
        _error(_pb_request(PbLogRecord(body=_nested_pb(MAX_VALUE_DEPTH + 1))), PB),
    ):
        assert err.status_code == 400 and f"nested deeper than {MAX_VALUE_DEPTH} levels" in err.message


def test_error_messages_quote_little_input_and_no_raw_bytes():
    """A huge bad value or a content type with control bytes is quoted short and escaped."""
    err = _error(_one_record_json(traceId="z" * 10_000), JS)
    assert len(err.message) < 200 and "z" * 41 not in err.message
    err = _error(b"{}", "text/\x00\x1b[31mevil" + "é" * 500)
    assert len(err.message) < 200
    assert all(c.isprintable() and ord(c) < 128 for c in err.message)


# --------------------------------------------------------------------------- replies


def test_encode_response_protobuf_and_json():
    """partial_success appears only when records were rejected, in the request's encoding."""
    body, ctype = encode_response(0, "", "protobuf")
    assert (body, ctype) == (b"", PB)
    body, ctype = encode_response(3, "bad ids", "protobuf")
    parsed = ExportLogsServiceResponse.FromString(body)
    assert ctype == PB and parsed.HasField("partial_success")
    assert (parsed.partial_success.rejected_log_records, parsed.partial_success.error_message) == (3, "bad ids")
    assert encode_response(0, "", "json") == (b"{}", JS)
    body, ctype = encode_response(3, "bad ids", "json")
    assert json.loads(body) == {"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "bad ids"}}


def test_encode_status_error_is_a_google_rpc_status():
    """Error bodies are google.rpc.Status (code = gRPC code for the HTTP status) in either encoding."""
    body, ctype = encode_status_error(400, "malformed JSON", "protobuf")
    status = status_pb2.Status.FromString(body)
    assert (ctype, status.code, status.message) == (PB, 3, "malformed JSON")
    body, ctype = encode_status_error(415, "unsupported", "json")
    assert (json.loads(body), ctype) == ({"code": 3, "message": "unsupported"}, JS)
    assert otlp_decode.grpc_code(429) == 8 and otlp_decode.grpc_code(418) == 2


def test_hand_encoded_status_matches_protobuf():
    """The fallback Status encoder writes the same bytes as google.rpc.status_pb2."""
    for code, message in [(3, "bad"), (0, ""), (14, "é" * 200)]:
        expected = status_pb2.Status(code=code, message=message).SerializeToString()
        assert otlp_decode._encode_status_by_hand(code, message) == expected


# --------------------------------------------------------------------------- fuzz

_FIELD_NAMES = [
    "resourceLogs", "resource_logs", "resource", "scopeLogs", "scope", "logRecords", "attributes", "key",
    "value", "values", "body", "traceId", "spanId", "timeUnixNano", "observedTimeUnixNano", "severityNumber",
    "severityText", "flags", "eventName", "stringValue", "intValue", "doubleValue", "boolValue", "bytesValue",
    "arrayValue", "kvlistValue", "schemaUrl", "name", "version", "droppedAttributesCount",
]  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None, categories=["L", "N", "P", "Cc", "Cs"]), max_size=40),
    st.sampled_from(["", "00", "0102030405060708090a0b0c0d0e0f10", "AAE=", "NaN", "SEVERITY_NUMBER_INFO", "12"]),
)
_jsonish = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_FIELD_NAMES), st.text(max_size=5)), children, max_size=5),
    ),
    max_leaves=30,
)
_leaf_value = st.one_of(
    st.builds(lambda v: {"stringValue": v}, st.text(max_size=10)),
    st.builds(lambda v: {"intValue": v}, st.one_of(st.integers(-(2**64), 2**64), st.integers().map(str))),
    st.builds(lambda v: {"doubleValue": v}, st.one_of(st.floats(), st.sampled_from(["NaN", "Infinity", "1e5"]))),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.builds(lambda v: {"bytesValue": base64.b64encode(v).decode()}, st.binary(max_size=8)),
    st.just({}),
)


def _kv_list(values):
    return st.lists(st.fixed_dictionaries({"key": st.text(max_size=6), "value": values}), max_size=4)


_any_value = st.recursive(
    _leaf_value,
    lambda children: st.one_of(
        st.builds(lambda v: {"arrayValue": {"values": v}}, st.lists(children, max_size=3)),
        st.builds(lambda v: {"kvlistValue": {"values": v}}, _kv_list(children)),
    ),
    max_leaves=12,
)


def _shaped(noise: bool) -> st.SearchStrategy:
    """OTLP-shaped JSON documents; with ``noise`` any field may also hold an arbitrary JSON-ish value."""

    def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(strategy, _jsonish) if noise else strategy

    value = maybe(_any_value)
    hexish = maybe(st.sampled_from(["", "0102030405060708", "0102030405060708090a0b0c0d0e0f10", "abcd", "xyz"]))
    record = st.fixed_dictionaries(
        {},
        optional={
            "timeUnixNano": maybe(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1).map(str))),
            "observedTimeUnixNano": maybe(st.integers(0, 2**64 - 1)),
            "severityNumber": maybe(st.one_of(st.integers(-3, 30), st.sampled_from(["SEVERITY_NUMBER_WARN", "9"]))),
            "severityText": maybe(st.text(max_size=5)),
            "body": value,
            "attributes": maybe(_kv_list(value)),
            "traceId": hexish,
            "spanId": hexish,
            "flags": maybe(st.integers(0, 2**32 - 1)),
            "eventName": maybe(st.text(max_size=8)),
            "droppedAttributesCount": maybe(st.integers(0, 2**32 - 1)),
        },
    )
    scope = maybe(st.fixed_dictionaries({}, optional={"name": st.text(max_size=5), "attributes": _kv_list(value)}))
    resource = maybe(st.builds(lambda a: {"attributes": a}, _kv_list(value)))
    return st.builds(
        lambda res, sc, recs: {"resourceLogs": [{"resource": res, "scopeLogs": [{"scope": sc, "logRecords": recs}]}]},
        resource,
        scope,
        st.lists(record, max_size=4),
    )

_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_total(body: bytes, content_type: str, encoding: str | None = None) -> None:
    try:
        decoded = decode_request(body, content_type, encoding, now_ns=NOW, max_decompressed_bytes=1 << 20)
    except OTLPDecodeError as err:
        assert err.status_code in (400, 413, 415) and 0 < len(err.message) < 400
        return
    assert isinstance(decoded, DecodedRequest)
    for record in decoded.records:  # and whatever decodes must also become a row
        row = to_row(record, "uid")
        assert all(isinstance(v, str) for v in row[-2].values())


@_FUZZ
@given(st.binary(max_size=600), st.sampled_from([PB, JS]), st.sampled_from([None, "gzip"]), st.booleans())
def test_fuzz_random_bytes_only_decode_or_4xx(data, content_type, encoding, compress):
    """Random bytes, optionally gzipped, for either content type: a DecodedRequest or OTLPDecodeError, nothing else."""
    _check_total(gzip.compress(data) if compress and encoding else data, content_type, encoding)


@_FUZZ
@given(st.one_of(_jsonish, _shaped(noise=True), _shaped(noise=False)))
def test_fuzz_random_json_only_decode_or_4xx(document):
    """Random JSON-ish documents (OTLP-shaped or not, NaN and surrogates included) never raise anything else."""
    _check_total(json.dumps(document).encode(), JS)


@_FUZZ
@given(st.data())
def test_fuzz_mutated_protobuf_only_decode_or_4xx(data):
    """Valid SDK protobuf with random byte flips, cuts and inserts never raises anything else."""
    body = bytearray(_FUZZ_SEED)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(body) - 1, 0)))
        if op == "flip" and body:
            body[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del body[pos : pos + data.draw(st.integers(1, 8))]
        else:
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _check_total(bytes(body), PB)


_FUZZ_SEED = _sdk_request().SerializeToString()


def _ids_to_base64(doc: dict) -> dict:
    """The same document with hex ids as base64 (plain proto3 JSON); non-hex ids become a number ParseDict refuses."""
    doc = copy.deepcopy(doc)
    for record in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        for key in ("traceId", "spanId"):
            if key in record:
                try:
                    record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
                except ValueError:
                    record[key] = 12  # not a string: ParseDict refuses it
    return doc


@_FUZZ
@given(_shaped(noise=False))
def test_json_decoder_agrees_with_protobuf_json_format(document):
    """Differential: our JSON walker accepts exactly what json_format.ParseDict accepts, with identical rows."""
    try:
        mine = decode_request(json.dumps(document).encode(), JS, None, now_ns=NOW)
    except OTLPDecodeError:
        mine = None
    try:
        reference = ParseDict(_ids_to_base64(document), ExportLogsServiceRequest(), ignore_unknown_fields=True)
    except ParseError:
        assert mine is None
        return
    assert mine is not None
    theirs = _decode(reference.SerializeToString())
    assert mine.rejected == theirs.rejected
    assert [to_row(r, "u") for r in mine.records] == [to_row(r, "u") for r in theirs.records]
