"""The ingest hot path's fast paths give exactly what the plain paths give.

Each fast path (one-pass protobuf decode, RE2-Set rule selection, the
sanitizer's memo caches, the fixed-order row builder, the repr-based double
format) is run side by side with the plain computation it replaces, on the
labeled sanitizer corpus and on the benchmark generator's realistic events.
"""

from __future__ import annotations

import importlib.util
import math
import random
import struct
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

import gitaudit.processors.sanitizer as sanitizer_module
from benchmarks.generator import EventGenerator
from gitaudit.processors import Sanitizer
from gitaudit.processors.engine import MAX_PASSES
from gitaudit.query.ingest import otlp_decode, rows
from gitaudit.query.store.time_window import LATEST_TIME_NS
from gitaudit.query.ingest.errors import OTLPDecodeError

_GEN_PATH = Path(__file__).parent / "corpus" / "sanitizer" / "generate.py"
_spec = importlib.util.spec_from_file_location("sanitizer_corpus_generate_fast", _GEN_PATH)
corpus = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = corpus
_spec.loader.exec_module(corpus)

KEY = b"fast-path-test-key"
NOW = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def requests() -> list[bytes]:
    """Serialized generator requests: 3,000 realistic events in batches of 500."""
    return [r.SerializeToString() for r in EventGenerator(3000, 5).otlp_requests(500)]


def _corpus_lines() -> list[str]:
    return [c.text for c in corpus.secret_cases()] + list(corpus.benign_lines())


def _value(v) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        out = AnyValue()
        out.array_value.values.extend(_value(x) for x in v)
        return out
    if isinstance(v, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=_value(x)) for k, x in v.items())
        return out
    if v is None:
        return AnyValue()
    return AnyValue(string_value=v)


def _edge_request() -> ExportLogsServiceRequest:
    """Records that exercise every branch: rejections, nesting, empty values, duplicate keys, time fallbacks."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.schema_url = "https://opentelemetry.io/schemas/1.26.0"
    rl.resource.attributes.extend([KeyValue(key="service.name", value=_value("svc")),
                                   KeyValue(key="nested", value=_value({"a": [1, 2.5, "x"]}))])
    sl = rl.scope_logs.add()
    sl.scope.name, sl.scope.version = "scope", "1.0"
    sl.scope.attributes.extend([KeyValue(key="s", value=_value(True))])
    sl.schema_url = "scope-schema"
    cases = [
        dict(body=_value("plain"), attrs={"a": "x", "b": "", "c": 0, "d": 0.0, "e": False, "f": b"", "g": None}),
        dict(body=_value(""), attrs={"dup": "first", "dup2": 1}),  # empty string body is a string, not absent
        dict(body=_value([1, {"k": "v"}, None]), attrs={"list": ["a", 1], "map": {"z": {"y": b"\x00"}}}),
        dict(body=_value({"m": 1.5}), attrs={}),
        dict(body=AnyValue(), attrs={}),  # no body, no attributes, no event name: rejected
        dict(body=_value("t"), attrs={}, trace_id=b"\x01" * 15),  # rejected
        dict(body=_value("t"), attrs={}, span_id=b"\x01" * 9),  # rejected
        dict(body=_value("t"), attrs={}, severity=25),  # rejected
        dict(body=AnyValue(), attrs={}, event_name="only.name"),
        dict(body=_value("ids"), attrs={}, trace_id=b"\x00" * 16, span_id=b"\x00" * 8),  # all-zero: absent
        dict(body=_value("ids"), attrs={}, trace_id=bytes(range(16)), span_id=bytes(range(8)), time=0, observed=5),
        dict(body=_value("times"), attrs={}, time=0, observed=0, flags=0x1FF),
        dict(body=_value(b"\xff\xfe"), attrs={"neg": -(2**63), "big": 2**63 - 1, "inf": math.inf}),
        dict(body=_value("late"), attrs={}, time=LATEST_TIME_NS),  # rejected: at the latest time
        dict(body=_value("late"), attrs={}, time=0, observed=LATEST_TIME_NS + 1),  # rejected: observed time used
        dict(body=_value("last"), attrs={}, time=LATEST_TIME_NS - 1),  # kept
    ]
    for n, c in enumerate(cases):
        rec = LogRecord(time_unix_nano=c.get("time", 1000 + n), observed_time_unix_nano=c.get("observed", 2000 + n),
                        severity_number=c.get("severity", 9), severity_text="INFO", body=c["body"],
                        trace_id=c.get("trace_id", b""), span_id=c.get("span_id", b""), flags=c.get("flags", 1),
                        event_name=c.get("event_name", ""))
        rec.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in c["attrs"].items())
        if n == 1:
            rec.attributes.append(KeyValue(key="dup", value=_value("last")))
        sl.log_records.append(rec)
    req.resource_logs.add()  # an empty ResourceLogs
    return req


def _plain_attributes(kvs, path: str) -> dict:
    return {kv.key: otlp_decode._proto_value(kv.value, f"{path}[{n}].value", 0) for n, kv in enumerate(kvs)}


def _plain_decode(payload: bytes) -> otlp_decode.DecodedRequest:
    """The two-pass reference: every value through the generic converter, then the shared assembly."""
    request = otlp_decode._parse_protobuf(payload)
    items = []
    for i, resource_logs in enumerate(request.resource_logs):
        rpath = f"resourceLogs[{i}]"
        resource_attrs = _plain_attributes(resource_logs.resource.attributes, f"{rpath}.resource.attributes")
        for j, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            ctx = otlp_decode._Context(
                resource_attrs, resource_logs.schema_url, scope.name, scope.version,
                _plain_attributes(scope.attributes, f"{rpath}.scopeLogs[{j}].scope.attributes"), scope_logs.schema_url)
            for k, rec in enumerate(scope_logs.log_records):
                path = otlp_decode._record_path(i, j, k)
                items.append((ctx, otlp_decode._Raw(
                    path, rec.time_unix_nano, rec.observed_time_unix_nano, int(rec.severity_number),
                    rec.severity_text, otlp_decode._proto_value(rec.body, f"{path}.body", 0),
                    _plain_attributes(rec.attributes, f"{path}.attributes"), bytes(rec.trace_id),
                    bytes(rec.span_id), rec.flags, rec.event_name)))
    return otlp_decode._assemble(items, "protobuf", NOW)


def test_one_pass_protobuf_decode_equals_the_two_pass_reference(requests):
    """The one-pass protobuf decoder returns the same records, rejections and messages as walk-then-assemble."""
    for payload in [*requests, _edge_request().SerializeToString()]:
        fast = otlp_decode.decode_request(payload, "application/x-protobuf", None, now_ns=NOW)
        assert repr(fast) == repr(_plain_decode(payload))
        for field in ("resource_attributes", "scope_attributes"):  # per-record copies, never shared
            assert len({id(getattr(r, field)) for r in fast.records}) == len(fast.records)
    edge = otlp_decode.decode_request(_edge_request().SerializeToString(), "application/x-protobuf", None, now_ns=NOW)
    assert edge.rejected == 6 and len(edge.records) == 10
    assert edge.records[-1].time_unix_nano == LATEST_TIME_NS - 1
    assert edge.records[0].attributes == {"a": "x", "b": "", "c": 0, "d": 0.0, "e": False, "f": b"", "g": None}
    assert edge.records[1].attributes["dup"] == "last" and edge.records[1].body == ""


def test_fast_decode_raises_the_same_depth_error_with_the_same_path():
    """A too-deeply nested attribute value is the same 400 naming the same field path on both paths."""
    deep: list = []
    for _ in range(otlp_decode.MAX_VALUE_DEPTH + 1):
        deep = [deep]
    req = ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add()
    rec.attributes.extend([KeyValue(key="ok", value=_value("x")), KeyValue(key="deep", value=_value(deep))])
    payload = req.SerializeToString()
    with pytest.raises(OTLPDecodeError) as fast:
        otlp_decode.decode_request(payload, "application/x-protobuf", None, now_ns=NOW)
    with pytest.raises(OTLPDecodeError) as plain:
        _plain_decode(payload)
    assert fast.value.status_code == plain.value.status_code == 400
    assert fast.value.message == plain.value.message
    assert "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[1].value" in fast.value.message


def _reference_scan(scanner, data: bytes, hits: list[str]) -> bytes | None:
    """The scan without rule selection: every rule whose keyword occurs, on every pass."""
    if not scanner.might_match(data):
        return None
    changed = False
    for _ in range(MAX_PASSES):
        out = scanner._scan_once(data, hits, scanner._plan)
        if out is None:
            break
        data, changed = out, True
    return data if changed else None


def test_rule_selection_by_re2_set_masks_exactly_what_every_rule_would(requests):
    """Scanning with the Set-selected rules gives the same bytes and hits as trying every rule, all scopes."""
    san = Sanitizer(fingerprint_key=KEY)
    texts = _corpus_lines()
    for payload in requests:
        for rec in otlp_decode.decode_request(payload, "application/x-protobuf", None, now_ns=NOW).records:
            texts.append(rec.body)
            texts.extend(v for v in rec.attributes.values() if isinstance(v, str))
    rng = random.Random(3)
    alphabet = "aAkK:=/@-_.~ 0123456789xyzQSKtokenpasswordghp_AKIA\u212a\n\"'"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(3000)]
    for scanner in (san._body, san._values, san._keys):
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")
            fast_hits: list[str] = []
            ref_hits: list[str] = []
            assert scanner.scan(data, fast_hits) == _reference_scan(scanner, data, ref_hits), text
            assert fast_hits == ref_hits, text


def _records(requests) -> list[otlp_decode.DecodedRecord]:
    decode = otlp_decode.decode_request
    return [r for p in requests for r in decode(p, "application/x-protobuf", None, now_ns=NOW).records]


def _corpus_records() -> list[tuple]:
    """(body, attributes, resource attributes) with secrets in every place a cache keys on, each seen again."""
    out = []
    for n, line in enumerate(_corpus_lines()):
        attrs = {"user.email": line, "user.id": f"u{n % 7}", "msg": line, "audit.organization.id": f"org{n % 3}",
                 "password": line, "count": 4111111111111111 if n % 5 == 0 else n, "flag": n % 2 == 0}
        resource = {"service.name": "svc", "host.name": line if n % 2 else "h1"}
        out.append((line, attrs, resource))
        out.append((line, dict(attrs), dict(resource)))
        out.append((line, {**attrs, "audit.organization.id": "other-org"}, dict(resource)))
    return out


def _san_out(result) -> tuple:
    return (result.body, list(result.attributes.items()), list(result.resource_attributes.items()),
            result.redacted_count, result.rules)


@pytest.mark.parametrize("cache_items", [8, 8192])
def test_memo_caches_return_what_an_uncached_sanitizer_computes(requests, monkeypatch, cache_items):
    """One long-lived sanitizer (warm caches, tiny or default size) equals a fresh one per record, output for output."""
    monkeypatch.setattr(sanitizer_module, "_CACHE_MAX_ITEMS", cache_items)
    monkeypatch.setattr(sanitizer_module, "_RESOURCE_CACHE_MAX_ITEMS", max(2, cache_items // 4))
    warm = Sanitizer(fingerprint_key=KEY)
    cold = Sanitizer(fingerprint_key=KEY)
    inputs = [(r.body, r.attributes, r.resource_attributes) for r in _records(requests)] + _corpus_records()
    for body, attrs, resource in inputs:
        got = _san_out(warm.sanitize_record(body, attrs, resource))
        _forget(cold)
        assert got == _san_out(cold.sanitize_record(body, attrs, resource))


def _forget(san: Sanitizer) -> None:
    """Empty every memo cache of ``san`` (as a fresh instance would have them)."""
    for cache in (san._clean_values, san._clean_old, san._key_cache, san._resource_cache, san._personal_cache,
                  san._personal._cache):
        cache.clear()


def test_prior_redaction_count_survives_a_key_cached_from_a_nested_map():
    """audit.redacted.count is added to even after the same key was cached from a map inside a body."""
    san = Sanitizer(fingerprint_key=KEY)
    san.sanitize_record({"audit.redacted.count": 1}, {})
    out = san.sanitize_record("token=abcd1234efgh5678", {"audit.redacted.count": 3, "a": "b"}).attributes
    assert out == {"a": "b", "audit.redacted.count": 4, "audit.redacted.rules": ["secret-assignment"]}


def test_fixed_order_rows_equal_rows_built_by_column_name(requests, monkeypatch):
    """to_row's direct tuple equals the by-column-name tuple, for generator records and odd value types."""
    recs = _records(requests) + otlp_decode.decode_request(
        _edge_request().SerializeToString(), "application/x-protobuf", None, now_ns=NOW).records
    recs[-1].resource_attributes["service.name"] = 7
    assert rows._FIXED_ORDER, "INSERT_COLUMNS changed: update rows._ROW_ORDER and to_row's direct tuple"
    fast = [rows.to_row(r, f"uid-{n}") for n, r in enumerate(recs)]
    monkeypatch.setattr(rows, "_FIXED_ORDER", False)
    assert fast == [rows.to_row(r, f"uid-{n}") for n, r in enumerate(recs)]
    assert fast[-1][6] == "7"


def test_repr_based_double_format_equals_the_digit_algorithm():
    """format_double's repr shortcut gives the digit algorithm's ES6 text for random and boundary doubles."""
    rng = random.Random(11)
    values = [1e-7, 1e-6, 1e-5, 1e-4, 0.001, 1e15, 1e16, 1e17, 1e20, 1e21, 5e-324, 1.7976931348623157e308, 0.1]
    for _ in range(20_000):
        f = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(f) and f != 0:
            values.append(f)
        values.append(rng.uniform(-1e6, 1e6) or 1.0)
        values.append(10.0 ** rng.randint(-25, 25) * (rng.random() + 0.01))
    for v in values:
        for signed in (v, -v):
            assert rows.format_double(signed) == rows._format_double_digits(signed), signed
