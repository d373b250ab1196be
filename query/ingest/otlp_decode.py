"""Decode OTLP/HTTP log export requests into flat records, and encode replies.

Pure functions, no I/O: the FastAPI endpoint hands the raw body and two
headers to :func:`decode_request` and gets back :class:`DecodedRecord` s (one
per accepted LogRecord, with its resource and scope folded in) plus the count
of rejected records for OTLP ``partial_success``.

Spec followed: OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#otlphttp).

* ``Content-Type``: ``application/x-protobuf`` (binary protobuf) or
  ``application/json`` (the OTLP JSON mapping); parameters such as
  ``; charset=utf-8`` are allowed and ignored. Anything else: 415.
* ``Content-Encoding``: ``gzip``, ``identity`` or absent (a comma list of
  these is applied right to left). Anything else: 415. Decompression is
  streamed and stops as soon as the output passes ``max_decompressed_bytes``
  (413), so a gzip bomb costs at most that much memory.
* Body larger than ``max_body_bytes`` (as received, before decompression): 413.
* The OTLP JSON mapping is the proto3 JSON mapping with OTLP's deviations:
  ``traceId``/``spanId`` are hex strings (not base64); enums are integers
  (``severityNumber`` may also be the enum name, e.g. ``SEVERITY_NUMBER_INFO``);
  keys are lowerCamelCase (the original snake_case names are accepted too, as
  protobuf's ``json_format`` does; when both spellings are present the
  lowerCamelCase one wins); 64-bit integers may be JSON numbers or decimal
  strings (integral floats such as ``5.0`` are accepted, as protobuf does);
  ``doubleValue`` may also be ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
  ``bytesValue`` is base64 (standard or URL-safe alphabet, padding optional);
  ``null`` means "field absent". Unknown fields are ignored, as OTLP requires
  of receivers. Invalid UTF-8, invalid JSON (including the non-standard
  ``NaN``/``Infinity`` literals and lone UTF-16 surrogate escapes), wrong field
  types and out-of-range integers are 400s naming the field path.

Whole-request problems raise :class:`~gitaudit.query.ingest.errors.OTLPDecodeError`;
single bad records are rejected and counted while the rest are kept. A record
is rejected when its trace id is neither empty nor 16 bytes, its span id
neither empty nor 8 bytes, its severity number is outside 0..24, it has no
body, no attributes and no event name, or its time (else its observed time) is
at or after 2100-01-01T00:00:00Z (:data:`~gitaudit.query.store.time_window.LATEST_TIME_NS`:
no read can reach a later event, and ``TimestampTime`` would wrap). (A JSON ``traceId`` that is not hex at
all is a 400; valid hex of the wrong length decodes to the wrong number of
bytes and rejects the record, exactly as the same bytes would in protobuf.)

Normalisations: all-zero trace and span ids read as absent (``''``), as the
collector's ``TraceIDToHexOrEmptyString`` does; duplicate attribute keys keep
the last value; ``AnyValue`` nesting (arrays and maps inside each other) is
limited to :data:`MAX_VALUE_DEPTH` levels (400 beyond).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from .errors import OTLPDecodeError
from ..store.time_window import LATEST_TIME_NS

try:  # googleapis-common-protos ships with opentelemetry-exporter-otlp-proto-http
    from google.rpc import status_pb2 as _status_pb2
except ImportError:  # pragma: no cover - exercised by encoding Status by hand
    _status_pb2 = None

__all__ = [
    "JSON_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_REJECTION_MESSAGES",
    "MAX_VALUE_DEPTH",
    "PROTOBUF_CONTENT_TYPE",
    "DecodedRecord",
    "DecodedRequest",
    "ResponseFormat",
    "decode_request",
    "encode_response",
    "encode_status_error",
    "grpc_code",
]

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"
#: Default limit on the body as received (bytes, before decompression).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Default limit on the body after decompression (bytes).
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
#: Deepest nesting of arrays/maps inside one ``AnyValue`` (1 = a flat list).
MAX_VALUE_DEPTH = 32
#: How many per-record rejection reasons :class:`DecodedRequest` keeps.
MAX_REJECTION_MESSAGES = 5
#: Longest input snippet quoted in an error message (characters, escaped).
_SNIPPET_CHARS = 40

ResponseFormat = Literal["protobuf", "json"]

_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_MAX_SEVERITY = 24
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT32 = (0, 2**32 - 1)
_UINT64 = (0, 2**64 - 1)
_SEVERITY_NAMES: dict[str, int] = dict(SeverityNumber.items())

# HTTP status -> google.rpc.Code, as the collector's OTLP receiver maps them.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 413: 3, 415: 3, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4}
_GRPC_UNKNOWN = 2


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class DecodedRecord:
    """One accepted OTLP LogRecord with its resource and scope folded in.

    Times are UTC nanoseconds since the Unix epoch. ``time_unix_nano`` is the
    record's time, or its observed time when the time is 0, or the receive
    time when both are 0; ``observed_time_unix_nano`` is the sender's observed
    time, or the receive time when 0. ``body`` and attribute values are Python
    values of the OTLP ``AnyValue``: ``str``, ``int``, ``float``, ``bool``,
    ``bytes``, ``list``, ``dict`` or ``None`` (empty value). ``trace_id`` is 32
    lowercase hex characters or ``''``; ``span_id`` 16 or ``''``. ``flags`` is
    the full 32-bit OTLP flags field (W3C trace flags in the low byte).
    Resource and scope attribute dicts are per-record shallow copies, so
    changing one record's never changes another's.
    """

    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    flags: int
    event_name: str
    resource_attributes: dict[str, Any]
    resource_schema_url: str
    scope_name: str
    scope_version: str
    scope_attributes: dict[str, Any]
    scope_schema_url: str


@dataclass(slots=True)
class DecodedRequest:
    """The result of decoding one export request.

    Attributes:
        records: accepted records, in request order.
        rejected: number of records rejected (for OTLP
            ``partial_success.rejected_log_records``).
        rejection_messages: the first :data:`MAX_REJECTION_MESSAGES` reasons,
            each prefixed with the record's path.
        response_format: ``"protobuf"`` or ``"json"``: answer in the
            request's encoding, as OTLP/HTTP requires.
    """

    records: list[DecodedRecord]
    rejected: int
    rejection_messages: list[str]
    response_format: ResponseFormat

    @property
    def error_message(self) -> str:
        """One line for ``partial_success.error_message``: ``''`` when nothing was rejected."""
        if not self.rejected:
            return ""
        text = "; ".join(self.rejection_messages)
        more = self.rejected - len(self.rejection_messages)
        return f"{text}; and {more} more rejected" if more > 0 else text


# --------------------------------------------------------------------------- entry point


def decode_request(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
    now_ns: int | None = None,
) -> DecodedRequest:
    """Decode an OTLP/HTTP ``POST /v1/logs`` body into records.

    Args:
        body: the request body as received (bytes-like).
        content_type: the ``Content-Type`` header (``None`` if absent).
        content_encoding: the ``Content-Encoding`` header (``None`` if absent).
        max_body_bytes: largest accepted body as received, in bytes.
        max_decompressed_bytes: largest accepted body after decompression, in bytes.
        now_ns: receive time in UTC nanoseconds, used for records with no
            timestamps (default: ``time.time_ns()``).

    Returns:
        A :class:`DecodedRequest` with the accepted records and the rejected count.

    Raises:
        OTLPDecodeError: 415 for an unsupported content type or encoding, 413
            for a body over either limit, 400 for a malformed body (protobuf,
            JSON, gzip, UTF-8) or a field of the wrong type. No other exception
            escapes for any input.
    """
    response_format = _response_format(content_type)
    size = len(body)
    if size > max_body_bytes:
        raise OTLPDecodeError(413, f"request body is {size} bytes, over the limit of {max_body_bytes} bytes")
    payload = _decode_content(bytes(body), content_encoding, max_decompressed_bytes)
    now = time.time_ns() if now_ns is None else now_ns
    if response_format == "protobuf":
        return _decode_protobuf(payload, now)
    return _assemble(_walk_json(payload), response_format, now)


# --------------------------------------------------------------------------- headers and gzip


def _response_format(content_type: str | None) -> ResponseFormat:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF_CONTENT_TYPE:
        return "protobuf"
    if media == JSON_CONTENT_TYPE:
        return "json"
    shown = _snippet(content_type) if content_type else "none"
    raise OTLPDecodeError(
        415, f"unsupported content type {shown}; supported: {PROTOBUF_CONTENT_TYPE}, {JSON_CONTENT_TYPE}"
    )


def _decode_content(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in ("gzip", "x-gzip"):
            raise OTLPDecodeError(
                415, f"unsupported content encoding {_snippet(coding)}; supported: gzip, identity"
            )
    for _ in reversed(codings):
        body = _gunzip(body, limit)
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress every gzip member of ``data``; 413 once output passes ``limit`` bytes."""
    out = bytearray()
    if not data:
        raise OTLPDecodeError(400, "malformed gzip body: empty")
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = data
        try:
            while not inflater.eof:
                chunk = inflater.decompress(pending, limit - len(out) + 1)
                pending = inflater.unconsumed_tail
                out += chunk
                if len(out) > limit:
                    raise OTLPDecodeError(413, f"decompressed body exceeds the limit of {limit} bytes")
                if not chunk and not pending:
                    break
        except zlib.error as exc:
            raise OTLPDecodeError(400, f"malformed gzip body: {exc}") from None
        if not inflater.eof:
            raise OTLPDecodeError(400, "malformed gzip body: truncated stream")
        data = inflater.unused_data
    return bytes(out)


# --------------------------------------------------------------------------- shared record shape


@dataclass(slots=True)
class _Raw:
    """A LogRecord as read from either encoding, before validation."""

    path: str
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    trace_id: bytes
    span_id: bytes
    flags: int
    event_name: str


@dataclass(slots=True)
class _Context:
    """The resource and scope a record belongs to."""

    resource_attributes: dict[str, Any]
    resource_schema_url: str
    scope_name: str
    scope_version: str
    scope_attributes: dict[str, Any]
    scope_schema_url: str


def _assemble(items: Iterable[tuple[_Context, _Raw]], response_format: ResponseFormat, now_ns: int) -> DecodedRequest:
    records: list[DecodedRecord] = []
    rejected = 0
    messages: list[str] = []
    for ctx, raw in items:
        reason = _rejection_reason(raw)
        if reason is not None:
            rejected += 1
            if len(messages) < MAX_REJECTION_MESSAGES:
                messages.append(f"{raw.path}: {reason}")
            continue
        observed = raw.observed_time_unix_nano or now_ns
        records.append(
            DecodedRecord(
                time_unix_nano=raw.time_unix_nano or raw.observed_time_unix_nano or now_ns,
                observed_time_unix_nano=observed,
                severity_number=raw.severity_number,
                severity_text=raw.severity_text,
                body=raw.body,
                attributes=raw.attributes,
                trace_id=_hex_or_empty(raw.trace_id),
                span_id=_hex_or_empty(raw.span_id),
                flags=raw.flags,
                event_name=raw.event_name,
                resource_attributes=dict(ctx.resource_attributes),
                resource_schema_url=ctx.resource_schema_url,
                scope_name=ctx.scope_name,
                scope_version=ctx.scope_version,
                scope_attributes=dict(ctx.scope_attributes),
                scope_schema_url=ctx.scope_schema_url,
            )
        )
    return DecodedRequest(records, rejected, messages, response_format)


def _rejection_reason(raw: _Raw) -> str | None:
    if len(raw.trace_id) not in (0, _TRACE_ID_BYTES):
        return f"traceId must be {_TRACE_ID_BYTES} bytes or empty, got {len(raw.trace_id)}"
    if len(raw.span_id) not in (0, _SPAN_ID_BYTES):
        return f"spanId must be {_SPAN_ID_BYTES} bytes or empty, got {len(raw.span_id)}"
    if not 0 <= raw.severity_number <= _MAX_SEVERITY:
        return f"severityNumber must be 0..{_MAX_SEVERITY}, got {raw.severity_number}"
    if raw.body is None and not raw.attributes and not raw.event_name:
        return "record has no body, no attributes and no eventName"
    if (raw.time_unix_nano or raw.observed_time_unix_nano) >= LATEST_TIME_NS:
        return (f"{'timeUnixNano' if raw.time_unix_nano else 'observedTimeUnixNano'} is at or after "
                "2100-01-01T00:00:00Z, the latest event time the store holds")
    return None


def _hex_or_empty(raw: bytes) -> str:
    return raw.hex() if any(raw) else ""


def _record_path(i: int, j: int, k: int) -> str:
    return f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"


# --------------------------------------------------------------------------- protobuf


def _parse_protobuf(payload: bytes) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(payload)
    except Exception:  # noqa: BLE001 - any parser failure on hostile bytes means "not a valid message"
        raise OTLPDecodeError(
            400, "malformed protobuf: body is not a valid opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"
        ) from None
    return request


def _decode_protobuf(payload: bytes, now_ns: int) -> DecodedRequest:
    """Parse, convert and validate a protobuf request in one pass (the hot ingest path).

    Same result as :func:`_assemble` over ``(context, raw record)`` pairs (as
    the JSON path does; tests/test_ingest_fast_paths.py pins the equality),
    without the intermediate ``_Raw`` / ``_Context`` objects:
    resource and scope attributes are converted once per ``ResourceLogs`` /
    ``ScopeLogs``, record paths are formatted only for rejected records, and
    scalar ``AnyValue`` s skip the generic converter.
    """
    request = _parse_protobuf(payload)
    records: list[DecodedRecord] = []
    append = records.append
    rejected = 0
    messages: list[str] = []
    for i, resource_logs in enumerate(request.resource_logs):
        rpath = f"resourceLogs[{i}]"
        resource_attrs = _proto_attributes(resource_logs.resource.attributes, f"{rpath}.resource.attributes")
        resource_schema_url = resource_logs.schema_url
        for j, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            scope_attrs = _proto_attributes(scope.attributes, f"{rpath}.scopeLogs[{j}].scope.attributes")
            scope_name = scope.name
            scope_version = scope.version
            scope_schema_url = scope_logs.schema_url
            for k, rec in enumerate(scope_logs.log_records):
                body_value = rec.body
                body = body_value.string_value  # non-empty: string_value is the oneof's member
                if not body:
                    kind = body_value.WhichOneof("value")
                    if kind is None:
                        body = None
                    elif kind != "string_value":
                        body = _proto_value(body_value, f"{_record_path(i, j, k)}.body", 0)
                attributes = _proto_attributes(rec.attributes, _LazyPath(i, j, k))
                trace_id = rec.trace_id
                span_id = rec.span_id
                severity_number = rec.severity_number
                event_name = rec.event_name
                if (
                    len(trace_id) not in _TRACE_ID_LENGTHS
                    or len(span_id) not in _SPAN_ID_LENGTHS
                    or not 0 <= severity_number <= _MAX_SEVERITY
                    or (body is None and not attributes and not event_name)
                    or (rec.time_unix_nano or rec.observed_time_unix_nano) >= LATEST_TIME_NS
                ):
                    rejected += 1
                    if len(messages) < MAX_REJECTION_MESSAGES:
                        raw = _Raw(_record_path(i, j, k), rec.time_unix_nano, rec.observed_time_unix_nano,
                                   severity_number, "", body, attributes, bytes(trace_id), bytes(span_id), 0,
                                   event_name)
                        messages.append(f"{raw.path}: {_rejection_reason(raw)}")
                    continue
                observed = rec.observed_time_unix_nano
                append(
                    DecodedRecord(
                        rec.time_unix_nano or observed or now_ns,
                        observed or now_ns,
                        severity_number,
                        rec.severity_text,
                        body,
                        attributes,
                        trace_id.hex() if any(trace_id) else "",
                        span_id.hex() if any(span_id) else "",
                        rec.flags,
                        event_name,
                        dict(resource_attrs),
                        resource_schema_url,
                        scope_name,
                        scope_version,
                        dict(scope_attrs),
                        scope_schema_url,
                    )
                )
    return DecodedRequest(records, rejected, messages, "protobuf")


class _LazyPath:
    """A record's ``...logRecords[k].attributes`` path, formatted only if an error needs it."""

    __slots__ = ("i", "j", "k")

    def __init__(self, i: int, j: int, k: int) -> None:
        self.i, self.j, self.k = i, j, k

    def __str__(self) -> str:
        return f"{_record_path(self.i, self.j, self.k)}.attributes"


_SCALAR_KINDS = frozenset({"string_value", "bool_value", "int_value", "double_value", "bytes_value"})
_TRACE_ID_LENGTHS = (0, _TRACE_ID_BYTES)
_SPAN_ID_LENGTHS = (0, _SPAN_ID_BYTES)


def _proto_attributes(kvs: Iterable[KeyValue], path: Any, depth: int = 0) -> dict[str, Any]:
    """``{key: value}`` of a repeated ``KeyValue`` (the last of duplicate keys wins).

    ``path`` (a string, or anything whose ``str()`` is the path) names the
    field in error messages. Scalar values are read inline; the first nested
    array or map hands the whole list to the generic converter.
    """
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        text = value.string_value
        if text:  # a non-empty string_value is the oneof's member: no other can be set
            out[kv.key] = text
            continue
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[kv.key] = text
        elif kind is None:
            out[kv.key] = None
        elif kind in _SCALAR_KINDS:
            out[kv.key] = getattr(value, kind)
        else:
            return _proto_attributes_nested(kvs, str(path), depth)
    return out


def _proto_attributes_nested(kvs: Iterable[KeyValue], path: str, depth: int) -> dict[str, Any]:
    return {kv.key: _proto_value(kv.value, f"{path}[{n}].value", depth) for n, kv in enumerate(kvs)}


def _proto_value(value: AnyValue, path: str, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    _check_depth(depth + 1, path)
    if kind == "array_value":
        return [
            _proto_value(v, f"{path}.arrayValue.values[{n}]", depth + 1) for n, v in enumerate(value.array_value.values)
        ]
    return _proto_attributes(value.kvlist_value.values, f"{path}.kvlistValue.values", depth + 1)


def _check_depth(depth: int, path: str) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise OTLPDecodeError(400, f"{path}: value nested deeper than {MAX_VALUE_DEPTH} levels")


# --------------------------------------------------------------------------- JSON


def _walk_json(payload: bytes) -> list[tuple[_Context, _Raw]]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OTLPDecodeError(400, f"invalid UTF-8 in JSON body at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise OTLPDecodeError(400, "malformed JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise OTLPDecodeError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # e.g. an integer literal longer than Python's 4300-digit limit
        raise OTLPDecodeError(400, "malformed JSON: a number literal is too long") from None
    root = _obj(document, "request body")
    items = []
    for i, resource_logs in enumerate(_list(_get(root, "resourceLogs", "resource_logs"), "resourceLogs")):
        rpath = f"resourceLogs[{i}]"
        resource_logs = _obj(resource_logs, rpath)
        resource = _obj(_get(resource_logs, "resource"), f"{rpath}.resource")
        resource_attrs = _json_attributes(_get(resource, "attributes"), f"{rpath}.resource.attributes", 0)
        _dropped_count(resource, f"{rpath}.resource")
        resource_schema_url = _str(_get(resource_logs, "schemaUrl", "schema_url"), f"{rpath}.schemaUrl")
        scope_list = _list(_get(resource_logs, "scopeLogs", "scope_logs"), f"{rpath}.scopeLogs")
        for j, scope_logs in enumerate(scope_list):
            spath = f"{rpath}.scopeLogs[{j}]"
            scope_logs = _obj(scope_logs, spath)
            scope = _obj(_get(scope_logs, "scope"), f"{spath}.scope")
            _dropped_count(scope, f"{spath}.scope")
            ctx = _Context(
                resource_attributes=resource_attrs,
                resource_schema_url=resource_schema_url,
                scope_name=_str(_get(scope, "name"), f"{spath}.scope.name"),
                scope_version=_str(_get(scope, "version"), f"{spath}.scope.version"),
                scope_attributes=_json_attributes(_get(scope, "attributes"), f"{spath}.scope.attributes", 0),
                scope_schema_url=_str(_get(scope_logs, "schemaUrl", "schema_url"), f"{spath}.schemaUrl"),
            )
            records = _list(_get(scope_logs, "logRecords", "log_records"), f"{spath}.logRecords")
            for k, record in enumerate(records):
                path = _record_path(i, j, k)
                items.append((ctx, _json_record(_obj(record, path), path)))
    return items


def _json_record(rec: dict[str, Any], path: str) -> _Raw:
    _dropped_count(rec, path)
    return _Raw(
        path=path,
        time_unix_nano=_int(_get(rec, "timeUnixNano", "time_unix_nano"), f"{path}.timeUnixNano", _UINT64),
        observed_time_unix_nano=_int(
            _get(rec, "observedTimeUnixNano", "observed_time_unix_nano"), f"{path}.observedTimeUnixNano", _UINT64
        ),
        severity_number=_severity(_get(rec, "severityNumber", "severity_number"), f"{path}.severityNumber"),
        severity_text=_str(_get(rec, "severityText", "severity_text"), f"{path}.severityText"),
        body=_json_value(_get(rec, "body"), f"{path}.body", 0),
        attributes=_json_attributes(_get(rec, "attributes"), f"{path}.attributes", 0),
        trace_id=_hex_id(_get(rec, "traceId", "trace_id"), f"{path}.traceId", _TRACE_ID_BYTES),
        span_id=_hex_id(_get(rec, "spanId", "span_id"), f"{path}.spanId", _SPAN_ID_BYTES),
        flags=_int(_get(rec, "flags"), f"{path}.flags", _UINT32),
        event_name=_str(_get(rec, "eventName", "event_name"), f"{path}.eventName"),
    )


def _dropped_count(obj: dict[str, Any], path: str) -> None:
    """Type-check ``droppedAttributesCount`` (uint32); its value is not stored."""
    _int(_get(obj, "droppedAttributesCount", "dropped_attributes_count"), f"{path}.droppedAttributesCount", _UINT32)


def _json_attributes(value: Any, path: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, kv in enumerate(_list(value, path)):
        kv_path = f"{path}[{n}]"
        kv = _obj(kv, kv_path)
        key = _str(_get(kv, "key"), f"{kv_path}.key")
        out[key] = _json_value(_get(kv, "value"), f"{kv_path}.value", depth)
    return out


_VALUE_FIELDS = (
    ("stringValue", "string_value"),
    ("boolValue", "bool_value"),
    ("intValue", "int_value"),
    ("doubleValue", "double_value"),
    ("arrayValue", "array_value"),
    ("kvlistValue", "kvlist_value"),
    ("bytesValue", "bytes_value"),
)


def _json_value(value: Any, path: str, depth: int) -> Any:
    if value is None:
        return None
    obj = _obj(value, path)
    present = [(camel, v) for camel, snake in _VALUE_FIELDS if (v := _get(obj, camel, snake)) is not None]
    if not present:
        return None
    if len(present) > 1:
        names = ", ".join(name for name, _ in present)
        raise OTLPDecodeError(400, f"{path}: AnyValue has more than one value set ({names})")
    kind, raw = present[0]
    where = f"{path}.{kind}"
    if kind == "stringValue":
        return _str(raw, where)
    if kind == "boolValue":
        if not isinstance(raw, bool):
            raise _type_error(where, "boolean", raw)
        return raw
    if kind == "intValue":
        return _int(raw, where, _INT64)
    if kind == "doubleValue":
        return _double(raw, where)
    if kind == "bytesValue":
        return _base64(raw, where)
    _check_depth(depth + 1, path)
    values = _get(_obj(raw, where), "values")
    if kind == "arrayValue":
        return [_json_value(v, f"{where}.values[{n}]", depth + 1) for n, v in enumerate(_list(values, f"{where}.values"))]
    return _json_attributes(values, f"{where}.values", depth + 1)


# --- JSON scalar readers: each takes the raw JSON value and the field path ----------

_DECIMAL_INT = re.compile(r"-?[0-9]{1,20}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_FLOAT_STRING = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _get(obj: dict[str, Any], camel: str, snake: str | None = None) -> Any:
    value = obj.get(camel)
    if value is None and snake is not None:
        value = obj.get(snake)
    return value


def _obj(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(path, "object", value)
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(path, "array", value)
    return value


def _str(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(path, "string", value)
    if _SURROGATE.search(value):
        raise OTLPDecodeError(400, f"{path}: string contains a lone UTF-16 surrogate escape (not valid UTF-8)")
    return value


def _int(value: Any, path: str, bounds: tuple[int, int]) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _type_error(path, "integer", value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _DECIMAL_INT.fullmatch(value):
        number = int(value)
    else:
        raise _type_error(path, "integer (number or decimal string)", value)
    low, high = bounds
    if not low <= number <= high:
        raise OTLPDecodeError(400, f"{path}: integer {_snippet(number)} out of range {low}..{high}")
    return number


def _severity(value: Any, path: str) -> int:
    if isinstance(value, str) and not _DECIMAL_INT.fullmatch(value):
        if value not in _SEVERITY_NAMES:
            raise OTLPDecodeError(400, f"{path}: unknown SeverityNumber name {_snippet(value)}")
        return _SEVERITY_NAMES[value]
    return _int(value, path, _INT32)


def _double(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise _type_error(path, "number", value)
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise OTLPDecodeError(400, f"{path}: number out of range for a double") from None
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        if len(value) <= 400 and _FLOAT_STRING.fullmatch(value):
            return float(value)
    raise _type_error(path, "number", value)


def _base64(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise _type_error(path, "base64 string", value)
    text = value.replace("-", "+").replace("_", "/")
    if not _BASE64.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
        raise OTLPDecodeError(400, f"{path}: expected base64, got {_snippet(value)}")
    text = text.rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise OTLPDecodeError(400, f"{path}: expected base64, got {_snippet(value)}") from None


def _hex_id(value: Any, path: str, size: int) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        got = _snippet(value) if isinstance(value, str) else _json_type(value)
        raise OTLPDecodeError(400, f"{path}: expected {2 * size} hex characters, got {got}")
    return bytes.fromhex(value)


def _reject_constant(name: str) -> Any:
    raise OTLPDecodeError(400, f"malformed JSON: {name} is not a valid JSON literal")


def _type_error(path: str, expected: str, value: Any) -> OTLPDecodeError:
    return OTLPDecodeError(400, f"{path}: expected {expected}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return f"string {_snippet(value)}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _snippet(value: Any) -> str:
    """A short, escaped, quoted rendering of part of the input (never raw bytes)."""
    text = value if isinstance(value, str) else str(value)
    shown: list[str] = []
    used = 0
    for n, char in enumerate(text):
        piece = char if " " <= char <= "~" else char.encode("unicode_escape").decode("ascii")
        if n >= _SNIPPET_CHARS or used + len(piece) > _SNIPPET_CHARS:
            return "'" + "".join(shown) + "'..."
        shown.append(piece)
        used += len(piece)
    return "'" + "".join(shown) + "'"


# --------------------------------------------------------------------------- replies


def encode_response(rejected: int, message: str, response_format: ResponseFormat) -> tuple[bytes, str]:
    """Encode the success reply to an export request.

    Args:
        rejected: records rejected (``partial_success.rejected_log_records``);
            ``partial_success`` is set only when this is > 0.
        message: ``partial_success.error_message`` (ignored when nothing was rejected).
        response_format: ``"protobuf"`` or ``"json"``, the request's encoding.

    Returns:
        ``(body, content_type)``: a serialized ``ExportLogsServiceResponse``;
        JSON is ``{"partialSuccess": {"rejectedLogRecords": "N", "errorMessage": "..."}}``
        or ``{}`` (int64 as a string, per the proto3 JSON mapping).
    """
    if response_format == "json":
        doc: dict[str, Any] = {}
        if rejected > 0:
            doc["partialSuccess"] = {"rejectedLogRecords": str(rejected), "errorMessage": message}
        return json.dumps(doc, separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE
    response = ExportLogsServiceResponse()
    if rejected > 0:
        response.partial_success.CopyFrom(ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message))
    return response.SerializeToString(), PROTOBUF_CONTENT_TYPE


def grpc_code(status_code: int) -> int:
    """The ``google.rpc.Code`` for an HTTP status (400/413/415 -> 3 INVALID_ARGUMENT, 429 -> 8, 503 -> 14, ...)."""
    return _GRPC_CODES.get(status_code, _GRPC_UNKNOWN)


def encode_status_error(status_code: int, message: str, response_format: ResponseFormat) -> tuple[bytes, str]:
    """Encode an OTLP/HTTP error reply: a ``google.rpc.Status`` message.

    Args:
        status_code: the HTTP status being returned (4xx/5xx); ``Status.code``
            is its ``google.rpc.Code`` (see :func:`grpc_code`).
        message: ``Status.message``, developer-facing.
        response_format: ``"protobuf"`` or ``"json"``.

    Returns:
        ``(body, content_type)``: protobuf ``Status`` bytes, or JSON
        ``{"code": 3, "message": "..."}``.
    """
    code = grpc_code(status_code)
    if response_format == "json":
        return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE
    if _status_pb2 is not None:
        return _status_pb2.Status(code=code, message=message).SerializeToString(), PROTOBUF_CONTENT_TYPE
    return _encode_status_by_hand(code, message), PROTOBUF_CONTENT_TYPE


def _encode_status_by_hand(code: int, message: str) -> bytes:
    """``google.rpc.Status`` wire format: field 1 ``int32 code``, field 2 ``string message``."""
    out = bytearray()
    if code:
        out += b"\x08" + _varint(code & 0xFFFFFFFFFFFFFFFF)
    data = message.encode("utf-8")
    if data:
        out += b"\x12" + _varint(len(data)) + data
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
