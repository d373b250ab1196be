"""The server under load and bad input: no errors but 429, no loss, bounded memory; fuzzing never gets a 5xx."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from benchmarks.bench_load import delivery_problems, otlp_batch, rss_kb, run_load, stored_uid_counts
from gitaudit.query.api.app import create_app
from gitaudit.query.ingest.errors import OTLPDecodeError
from gitaudit.query.ingest.otlp_decode import decode_request
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings

MAX_BODY = 256 * 1024
FUZZ_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def server(store, tmp_path, monkeypatch):
    """A real server (uvicorn, loopback, auth off) over a fresh store, every router included."""
    monkeypatch.setenv("GITAUDIT_SIGNING_KEY_FILE", str(tmp_path / "signing_key.pem"))
    app = create_app(Settings(max_body_bytes=MAX_BODY, max_decompressed_bytes=4 * MAX_BODY), store)
    with BackgroundServer(app) as srv:
        yield srv


def test_bounded_load_of_senders_and_searchers_loses_nothing_and_stays_bounded(server, store):
    """4 OTLP senders + 2 searchers for ~10 s: only 200/429, every acknowledged uid stored once, RSS bounded."""
    prefix = "ldtest"
    result = run_load(server.url, duration_s=10, senders=4, searchers=2, batch_size=100, prefix=prefix)
    assert result.unexpected() == {}, (result.unexpected(), result.transport_errors)
    assert len(result.acked_uids) >= 1000  # the run did real work
    assert sum(n for (kind, _), n in result.statuses.items() if kind == "search") >= 10
    assert delivery_problems(result.acked_uids, stored_uid_counts(store, prefix)) == []
    growth_mib = (result.rss_after_kb - result.rss_before_kb) / 1024
    assert growth_mib < 512, f"RSS grew by {growth_mib:.0f} MiB"


# --------------------------------------------------------------------------- fuzz inputs

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=False), st.text(max_size=30))
_json_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def _field(good):
    """Either a well-formed value or any JSON value (a wrong type, out of range...)."""
    return st.one_of(st.just(good), _json_values)


@st.composite
def otlp_json_bodies(draw) -> bytes:
    """OTLP/JSON requests whose fields are each well-formed or arbitrary JSON."""
    record = {
        "timeUnixNano": draw(_field("1764000000000000001")),
        "severityNumber": draw(_field(9)),
        "eventName": draw(_field("git.push")),
        "traceId": draw(_field("0af7651916cd43dd8448eb211c80319c")),
        "spanId": draw(_field("b7ad6b7169203331")),
        "body": draw(_field({"stringValue": "x"})),
        "attributes": draw(_field([{"key": "log.record.uid", "value": {"stringValue": "fz-1"}},
                                   {"key": "audit.organization.id", "value": {"stringValue": "fuzz"}}])),
    }
    doc = {"resourceLogs": [{"resource": draw(_field({"attributes": []})),
                             "scopeLogs": draw(_field([{"scope": {"name": "s"}, "logRecords": [record]}]))}]}
    doc = draw(st.one_of(st.just(doc), _json_values))
    return json.dumps(doc).encode()


def _valid_protobuf() -> bytes:
    return otlp_batch("fzpb", 0, 0, 3, "fuzz")[0]


@st.composite
def mutated_protobuf(draw) -> bytes:
    """A valid ExportLogsServiceRequest with bytes flipped, cut, or inserted."""
    data = bytearray(_valid_protobuf())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "cut", "insert")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 40))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
    return bytes(data)


_requests = st.one_of(
    st.tuples(st.just("application/x-protobuf"), mutated_protobuf()),
    st.tuples(st.just("application/x-protobuf"), st.binary(max_size=300)),
    st.tuples(st.just("application/json"), otlp_json_bodies()),
    st.tuples(st.just("application/json"), st.binary(max_size=200)),
    st.tuples(st.sampled_from(("text/plain", "", "application/json; charset=latin-1", "application/x-protobuf;x=1")),
              st.binary(max_size=50)),
)
_encodings = st.sampled_from((None, "gzip", "gzip-bad", "br", "identity, gzip"))


def _encode(body: bytes, encoding: str | None) -> tuple[bytes, dict[str, str]]:
    if encoding in ("gzip", "identity, gzip"):
        return gzip.compress(body), {"Content-Encoding": encoding}
    if encoding == "gzip-bad":
        return body, {"Content-Encoding": "gzip"}
    return body, ({"Content-Encoding": encoding} if encoding else {})


@FUZZ_SETTINGS
@given(request=_requests, encoding=_encodings)
def test_decoder_fuzz_never_raises_anything_but_a_4xx_decode_error(request, encoding):
    """Malformed protobuf/JSON bodies: the decoder returns records or raises OTLPDecodeError with a 4xx."""
    content_type, body = request
    body, headers = _encode(body, encoding)
    try:
        decode_request(body, content_type, headers.get("Content-Encoding"), max_body_bytes=MAX_BODY,
                       max_decompressed_bytes=4 * MAX_BODY)
    except OTLPDecodeError as exc:
        assert 400 <= exc.status_code < 500 and exc.message


def test_server_fuzz_never_answers_5xx_and_never_writes_part_of_a_rejected_request(server, store):
    """Fuzzed bodies POSTed to /v1/logs: no 5xx; a 4xx leaves the row count unchanged; a 200 adds at most
    the records the decoder accepted."""
    seen: list[int] = []
    client = httpx.Client(timeout=30)

    @FUZZ_SETTINGS
    @given(request=_requests, encoding=_encodings)
    def post(request, encoding):
        content_type, body = request
        payload, headers = _encode(body, encoding)
        if content_type:
            headers["Content-Type"] = content_type
        before = store.count()
        resp = client.post(f"{server.url}/v1/logs", content=payload, headers=headers)
        seen.append(resp.status_code)
        assert resp.status_code < 500, resp.text[:300]
        after = store.count()
        if resp.status_code >= 400:
            assert after == before, f"{resp.status_code} but {after - before} row(s) written"
        else:
            try:
                accepted = len(decode_request(payload, content_type, headers.get("Content-Encoding"),
                                              max_body_bytes=MAX_BODY, max_decompressed_bytes=4 * MAX_BODY).records)
            except OTLPDecodeError:
                accepted = 0
            assert 0 <= after - before <= accepted

    try:
        post()
    finally:
        client.close()
    assert any(s >= 400 for s in seen) and any(s == 200 for s in seen)


# --------------------------------------------------------------------------- schemathesis

SCHEMATHESIS_BUDGET_S = 50
#: Server-sent-event streams never end; a "no 5xx" call cannot complete on them.
_SKIP_PATH_PARTS = ("/stream",)


def test_schemathesis_no_endpoint_answers_5xx(server):
    """schemathesis (positive and negative cases from the OpenAPI schema): no operation answers 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    raw = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if not any(p in op.path for p in _SKIP_PATH_PARTS)]
    assert len(operations) >= 5
    started = time.monotonic()
    exercised = []
    for op in operations:
        if time.monotonic() - started > SCHEMATHESIS_BUDGET_S:
            break
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=op.as_strategy(generation_mode=mode))
            def call(case):
                case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=20)

            try:
                call()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to make invalid (no parameters)
        exercised.append(f"{op.method.upper()} {op.path}")
    assert len(exercised) >= 5, exercised


def test_rss_probe_reads_this_process():
    """The RSS probe used by the load figures reads a positive size from /proc."""
    assert rss_kb() > 10_000
