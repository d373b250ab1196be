"""The benchmarks run in their quick form on tiny sizes and produce sane tables and JSON."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

from benchmarks import bench_emit, bench_ingest, bench_lookup, bench_postgres, bench_search, bench_storage
from benchmarks.__main__ import parse_args
from benchmarks.common import load_dataset, percentiles
from benchmarks.generator import EVENT_NAMES, EventGenerator, rows_to_otlp
from gitaudit.query.ingest.otlp_decode import decode_request
from gitaudit.query.store.schema import INSERT_COLUMNS

N = 2_000


def _json(path) -> dict:
    return json.loads(path.read_text())


def test_generator_is_deterministic_across_block_sizes():
    """The same seed gives the same events whatever block size the caller asks for."""
    a = pa.concat_tables(list(EventGenerator(3_000, seed=3).arrow_blocks(700)))
    b = pa.concat_tables(list(EventGenerator(3_000, seed=3).arrow_blocks(3_000)))
    assert a.num_rows == 3_000 and a.equals(b)
    assert not a.equals(pa.concat_tables(list(EventGenerator(3_000, seed=4).arrow_blocks(3_000))))


def test_generator_rows_are_realistic_insert_rows():
    """Rows follow INSERT_COLUMNS, carry unique uids, time-ordered ns timestamps and the event mix."""
    rows = [r for block in EventGenerator(N, seed=1).row_blocks(500) for r in block]
    assert len(rows) == N and all(len(r) == len(INSERT_COLUMNS) for r in rows)
    pos = {c: i for i, c in enumerate(INSERT_COLUMNS)}
    ts = [r[pos["Timestamp"]] for r in rows]
    assert ts == sorted(ts) and all(isinstance(t, int) and t > 1.7e18 for t in ts)
    attrs = [r[pos["LogAttributes"]] for r in rows]
    uids = {a["log.record.uid"] for a in attrs}
    assert len(uids) == N and all(len(u) == 36 and u[14] == "7" for u in uids)
    names = {r[pos["EventName"]] for r in rows}
    assert names <= set(EVENT_NAMES) and {"git.push", "git.fetch", "claude.request"} <= names
    assert len({a["user.id"] for a in attrs}) > 100 and len({a["audit.organization.id"] for a in attrs}) > 10
    outcomes = [a["audit.outcome"] for a in attrs]
    assert 0.005 < outcomes.count("failure") / N < 0.08
    claude = [a for a, r in zip(attrs, rows) if r[pos["EventName"]] == "claude.request" and
              a["audit.outcome"] == "success"]
    assert claude and all(int(a["gen_ai.usage.input_tokens"]) > 0 and float(a["gen_ai.usage.cost_usd"]) > 0
                          for a in claude)
    assert all(len(r[pos["TraceId"]]) == 32 and len(r[pos["SpanId"]]) == 16 for r in rows)


def test_otlp_batches_decode_with_the_server_decoder():
    """Generated OTLP requests decode with the project's decoder to the same records, uids kept."""
    rows = next(EventGenerator(600, seed=2).row_blocks(600))
    body = rows_to_otlp(rows).SerializeToString()
    decoded = decode_request(body, "application/x-protobuf", None)
    assert decoded.rejected == 0 and len(decoded.records) == 600
    uid_pos = INSERT_COLUMNS.index("LogAttributes")
    assert {r.attributes["log.record.uid"] for r in decoded.records} == {r[uid_pos]["log.record.uid"] for r in rows}


def test_percentiles_are_nearest_rank_in_ms():
    """p50/p95/p99 are nearest-rank values of the samples, in milliseconds."""
    p = percentiles([i / 1000 for i in range(1, 101)])
    assert (p["p50"], p["p95"], p["p99"], p["runs"]) == (pytest.approx(50), pytest.approx(95), pytest.approx(99), 100)


def test_storage_search_and_lookup_quick(store, tmp_path, capsys):
    """Loaded tiny dataset: storage, search and lookup benchmarks print tables and write sane JSON."""
    ds = load_dataset(store, N, seed=5)
    assert store.count() == N and not ds.reused and ds.load_rate > 0
    assert load_dataset(store, N, seed=5).reused
    facts = bench_storage.run(ds, results_dir=tmp_path)
    assert 20 < facts["bytes_per_event"] < 5_000 and facts["compression_ratio"] > 1
    res = bench_search.run(ds, runs=2, results_dir=tmp_path)
    doc = _json(tmp_path / "search_2k.json")
    assert set(doc["queries"]) == {n for n, _ in bench_search.CANONICAL}
    for name, q in doc["queries"].items():
        assert 0 < q["p50"] <= q["p95"] <= q["p99"], name
    assert doc["queries"]["trace_id"]["rows_mean"] >= 1
    assert doc["queries"]["counts_by_event"]["rows_mean"] > 5
    assert len(res["params"].by_query["user_last_7d"]) == 3
    out = bench_lookup.run(ds, runs=2, variants=("base", "g8192", "lookup"), results_dir=tmp_path)
    assert out["lookup"]["bytes_per_event"] > out["base"]["bytes_per_event"] * 0.9
    assert _json(tmp_path / "lookup_2k.json")["variants"]["g8192"]["queries"]["repository"]["rows_mean"] >= 1
    printed = capsys.readouterr().out
    assert "Storage at 2k events" in printed and "Lookup gap at 2k events" in printed


def test_lookup_two_step_query_returns_what_search_returns(store):
    """The lookup-table variant answers a user's newest events exactly as search_events does."""
    from gitaudit.query.search import EventQuery, search_events

    ds = load_dataset(store, N, seed=6)
    bench_lookup._build(store, "lookup")
    user = store.query(f"SELECT UserId FROM {store.table} GROUP BY UserId ORDER BY count() DESC LIMIT 1")[0][0]
    expected = [e["uid"] for e in search_events(store, EventQuery(users=[user], limit=100)).events]
    assert bench_lookup._lookup_search(store, "user", user) == len(expected) > 0
    assert ds.n_events == N


def test_ingest_quick_in_process(store, tmp_path):
    """OTLP ingest through a real in-process server and the direct inserts store every event."""
    res = bench_ingest.run(otlp_events=600, direct_events=N, store=store, server="thread",
                           results_dir=tmp_path, quiet=True)
    for key in ("otlp_512", "otlp_5000", "store_insert_rows", "store_arrow", "engine_only"):
        assert res[key]["events_per_s"] > 0 and res[key]["cpu_s_per_100k"] > 0, key
    assert res["otlp_512"]["stored"] == 600 and res["otlp_512"]["failed_requests"] == 0
    assert res["store_insert_rows"]["stored"] == N == res["engine_only"]["stored"]
    assert _json(tmp_path / "ingest.json")["results"]["otlp_5000"]["requests"] == 1


def test_emit_quick(tmp_path):
    """emit_event overhead is measured for the batch and both spool pipelines."""
    res = bench_emit.run(events=300, spool_events=20, results_dir=tmp_path, quiet=True)
    assert res["batch"]["exported"] == 300 + 50  # timed events plus the warm-up
    for v in res.values():
        assert 0 < v["p50_us"] <= v["p99_us"]
    assert _json(tmp_path / "emit.json")["results"]["spool_always"]["events"] == 20


def test_cli_arguments():
    """--quick picks one small size and skips other scripts; --only rejects unknown names."""
    args = parse_args(["--quick"])
    assert args.sizes == [50_000] and "others" not in args.only_set and "postgres" not in args.only_set
    assert parse_args(["--events", "1e6,2000000", "--only", "search"]).sizes == [1_000_000, 2_000_000]
    assert parse_args(["--large"]).sizes == [1_000_000, 10_000_000, 30_000_000]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])


def test_postgres_helpers():
    """Monthly partitions cover the period; time parameters become UTC datetimes."""
    gen = EventGenerator(10, seed=1)
    months = bench_postgres._months(gen.start_ns, gen.end_ns)
    assert [m[0] for m in months] == ["audit_logs_202601", "audit_logs_202602", "audit_logs_202603",
                                      "audit_logs_202604"]
    p = bench_postgres.pg_params("top_users", {"start_ns": gen.start_ns, "end_ns": gen.end_ns})
    assert p["start"].isoformat() == "2026-01-05T00:00:00+00:00"
    assert set(bench_postgres.PG_SQL) == {n for n, _ in bench_search.CANONICAL}


@pytest.mark.skipif(not os.environ.get("GITAUDIT_BENCH_PG_DSN"), reason="set GITAUDIT_BENCH_PG_DSN to a PostgreSQL")
def test_postgres_side_by_side(store, tmp_path):
    """With a PostgreSQL, the same events load and every query gets a ratio."""
    ds = load_dataset(store, N, seed=8)
    res = bench_postgres.run(ds, os.environ["GITAUDIT_BENCH_PG_DSN"], runs=2, results_dir=tmp_path, quiet=True)
    assert res["storage"]["postgres_bytes_per_event"] > 0 and all(q["ratio_p95"] > 0 for q in res["queries"].values())


def test_postgres_export_writes_the_streamed_rows(store, tmp_path):
    """The engine-written CSV for PostgreSQL's COPY holds exactly the rows the client stream gives."""
    import csv
    import io

    load_dataset(store, 300, seed=9)
    path = tmp_path / "audit_logs.csv"
    bench_postgres.export_csv(store, str(path))
    select = bench_postgres.EXPORT_SQL.replace("{table}", store.table).replace(" FORMAT CSV", "").strip()
    streamed = b"".join(store.client.raw_stream(select, fmt="CSV")).decode()
    written = sorted(csv.reader(io.StringIO(path.read_text())))
    assert len(written) == 300 and written == sorted(csv.reader(io.StringIO(streamed)))
    assert written[0][11].endswith("+00") and json.loads(written[0][6])["trace_id"] == written[0][10]
    with pytest.raises(ValueError, match="unsupported characters"):
        bench_postgres.export_csv(store, str(tmp_path / "it's.csv"))
