"""Turn a decoded OTLP record into an ``otel_logs`` row, as the collector would.

The row matches :data:`gitaudit.query.store.schema.INSERT_COLUMNS` and the
values the OpenTelemetry Collector ClickHouse exporter writes
(exporter/clickhouseexporter ``pushLogsData``), so rows from our ingest and rows
from a production collector are indistinguishable:

* ``Timestamp``: int, UTC nanoseconds (the decoder already applied "time, else
  observed time, else receive time").
* ``TraceId`` / ``SpanId``: lowercase hex or ``''``.
* ``TraceFlags``: ``flags & 0xFF`` (the W3C trace flags byte; column is UInt8).
* ``ServiceName``: resource attribute ``service.name`` as a string, ``''`` if absent.
* ``Body`` and every attribute value: pcommon ``Value.AsString()``
  (:func:`stringify_any`).
* ``LogAttributes`` always carries ``log.record.uid`` = the ``uid`` argument.

:func:`stringify_any` follows pdata's ``Value.AsString()``
(go.opentelemetry.io/collector/pdata/pcommon/value.go) exactly:

=================  ============================================================
value              string
=================  ============================================================
``None`` (empty)   ``''``
``str``            unchanged
``bool``           ``true`` / ``false``
``int``            decimal (``strconv.FormatInt``)
``float``          ES6 number-to-string, as Go's ``encoding/json`` does: the
                   shortest digits that round-trip (Python ``repr``'s digits,
                   same as Go's ``strconv`` shortest), fixed notation when
                   ``1e-6 <= |f| < 1e21`` (``12.5``, ``100``, ``0.000001``,
                   ``100000000000000000000``, ``-0``), otherwise exponent
                   notation with a signed exponent, no leading zero for
                   negative exponents and at least two digits for positive
                   ones (``1e+21``, ``1.5e-7``, ``5e-324``); NaN and infinities
                   give ``json: unsupported value: NaN`` / ``+Inf`` / ``-Inf``
                   (pdata's exact text)
``bytes``          base64, standard alphabet with padding
``list`` / ``dict``  compact JSON as Go's ``json.Marshal`` writes it: map keys
                   sorted, no spaces, nested strings escaped as Go does
                   (``<``, ``>``, ``&``, U+2028, U+2029 as ``\\u003c`` etc.,
                   control characters as ``\\n``/``\\u001f``, other non-ASCII
                   kept as is), nested bytes as base64 strings, nested empty
                   values as ``null``, nested doubles as above; a NaN or
                   infinity anywhere inside makes ``json.Marshal`` fail, and
                   pdata then returns ``''``
=================  ============================================================
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any

from gitaudit.instrumentation.semconv import LOG_RECORD_UID
from gitaudit.query.store.schema import INSERT_COLUMNS

from .otlp_decode import DecodedRecord

__all__ = ["existing_uid", "format_double", "stringify_any", "stringify_attributes", "to_row"]

_SERVICE_NAME = "service.name"


def existing_uid(record: DecodedRecord) -> str | None:
    """The record's own ``log.record.uid`` if it carries a non-empty string one, else ``None``.

    The ingest endpoint keeps a sender's uid (so the sender can look its event
    up) and makes a fresh UUIDv7 only when this returns ``None``.
    """
    uid = record.attributes.get(LOG_RECORD_UID)
    return uid if isinstance(uid, str) and uid else None


def to_row(record: DecodedRecord, uid: str) -> tuple:
    """One ``otel_logs`` row for ``record``, values in ``INSERT_COLUMNS`` order.

    Args:
        record: an accepted record from :func:`~gitaudit.query.ingest.otlp_decode.decode_request`.
        uid: the event's ``log.record.uid`` (the record's own, see
            :func:`existing_uid`, or a fresh one); written into ``LogAttributes``,
            replacing any non-string value the record carried under that key.

    Returns:
        A tuple: Timestamp (int ns UTC), TraceId, SpanId, TraceFlags (0..255),
        SeverityText, SeverityNumber, ServiceName, Body (str),
        ResourceSchemaUrl, ResourceAttributes (dict str->str), ScopeSchemaUrl,
        ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName.
    """
    log_attributes = stringify_attributes(record.attributes)
    log_attributes[LOG_RECORD_UID] = uid
    resource_attributes = record.resource_attributes
    service = resource_attributes.get(_SERVICE_NAME)
    body = record.body
    if _FIXED_ORDER:
        return (
            record.time_unix_nano,
            record.trace_id,
            record.span_id,
            record.flags & 0xFF,
            record.severity_text,
            record.severity_number,
            "" if service is None else service if type(service) is str else stringify_any(service),
            body if type(body) is str else stringify_any(body),
            record.resource_schema_url,
            stringify_attributes(resource_attributes),
            record.scope_schema_url,
            record.scope_name,
            record.scope_version,
            stringify_attributes(record.scope_attributes) if record.scope_attributes else {},
            log_attributes,
            record.event_name,
        )
    values = {
        "Timestamp": record.time_unix_nano,
        "TraceId": record.trace_id,
        "SpanId": record.span_id,
        "TraceFlags": record.flags & 0xFF,
        "SeverityText": record.severity_text,
        "SeverityNumber": record.severity_number,
        "ServiceName": "" if service is None else stringify_any(service),
        "Body": stringify_any(record.body),
        "ResourceSchemaUrl": record.resource_schema_url,
        "ResourceAttributes": stringify_attributes(record.resource_attributes),
        "ScopeSchemaUrl": record.scope_schema_url,
        "ScopeName": record.scope_name,
        "ScopeVersion": record.scope_version,
        "ScopeAttributes": stringify_attributes(record.scope_attributes),
        "LogAttributes": log_attributes,
        "EventName": record.event_name,
    }
    return tuple(values[column] for column in INSERT_COLUMNS)


#: The column order :func:`to_row` writes directly; any other ``INSERT_COLUMNS`` uses the by-name path.
_ROW_ORDER = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
    "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "LogAttributes", "EventName",
)
_FIXED_ORDER = tuple(INSERT_COLUMNS) == _ROW_ORDER


def stringify_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    """``{key: stringify_any(value)}``: an attribute map as the collector stores it (a new dict)."""
    return {key: value if type(value) is str else stringify_any(value) for key, value in attributes.items()}


def stringify_any(value: Any) -> str:
    """pcommon ``Value.AsString()`` of a decoded ``AnyValue`` (rules in the module docstring).

    Args:
        value: ``None``, ``str``, ``bool``, ``int``, ``float``, ``bytes``,
            ``list`` or ``dict`` (str keys), nested as decoded.

    Returns:
        The string the OpenTelemetry Collector ClickHouse exporter would store.
    """
    convert = _SCALAR_CONVERTERS.get(type(value))
    if convert is not None:
        return convert(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "json: unsupported value: NaN"
        if math.isinf(value):
            return "json: unsupported value: +Inf" if value > 0 else "json: unsupported value: -Inf"
        return format_double(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple, dict)):
        parts: list[str] = []
        try:
            _json(value, parts)
        except _UnsupportedValue:
            return ""
        return "".join(parts)
    return str(value)


def _stringify_float(value: float) -> str:
    if math.isnan(value):
        return "json: unsupported value: NaN"
    if math.isinf(value):
        return "json: unsupported value: +Inf" if value > 0 else "json: unsupported value: -Inf"
    return format_double(value)


# Exact scalar types -> their AsString() (the isinstance chain of stringify_any gives the same).
_SCALAR_CONVERTERS = {
    str: lambda value: value,
    bool: lambda value: "true" if value else "false",
    int: int.__repr__,
    float: _stringify_float,
    type(None): lambda value: "",
}


def format_double(value: float) -> str:
    """A finite double as Go's ``encoding/json`` writes it (ES6 number-to-string).

    Examples: ``12.5 -> "12.5"``, ``100.0 -> "100"``, ``1e20 -> "100000000000000000000"``,
    ``1e21 -> "1e+21"``, ``1.5e-7 -> "1.5e-7"``, ``-0.0 -> "-0"``.
    """
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = repr(value)
    if "e" not in text:
        # Python's repr has the same shortest round-trip digits and, for 1e-4 <= |f| < 1e16,
        # fixed notation with the point in place: equal to the ES6 form once ".0" is dropped.
        return text[:-2] if text.endswith(".0") else text
    return _format_double_digits(value)


def _format_double_digits(value: float) -> str:
    """:func:`format_double` of a finite, non-zero double, from its shortest decimal digits."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    _, digit_tuple, exponent = Decimal(repr(magnitude)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)  # value == int(digits) * 10**exponent
    if magnitude < 1e-6 or magnitude >= 1e21:
        scientific = len(digits) - 1 + exponent
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        suffix = f"+{scientific:02d}" if scientific >= 0 else f"-{-scientific}"
        return f"{sign}{mantissa}e{suffix}"
    if exponent >= 0:
        return sign + digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}0.{'0' * -point}{digits}"


class _UnsupportedValue(Exception):
    """A NaN or infinity inside an array or map: Go's json.Marshal refuses it."""


# Go's encoding/json string escaping (encodeState.string with escapeHTML=true).
_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES.update({chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _GO_ESCAPES})
_GO_ESCAPES.update({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def _json_string(text: str) -> str:
    return '"' + text.translate(_GO_ESCAPE_TABLE) + '"'


def _json(value: Any, out: list[str]) -> None:
    """Append ``value`` as Go's ``json.Marshal(pcommon.Value.AsRaw())`` writes it."""
    if value is None:
        out.append("null")
    elif isinstance(value, str):
        out.append(_json_string(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _UnsupportedValue
        out.append(format_double(value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append('"' + base64.b64encode(bytes(value)).decode("ascii") + '"')
    elif isinstance(value, dict):
        out.append("{")
        for n, key in enumerate(sorted(value, key=str)):
            if n:
                out.append(",")
            out.append(_json_string(str(key)))
            out.append(":")
            _json(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _json(item, out)
        out.append("]")
    else:
        out.append(_json_string(str(value)))
