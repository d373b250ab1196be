"""Export: NDJSON/CSV streaming of whole result sets in bounded memory, and the export/search CLI."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
import uuid

import httpx
import pytest
import typer
from search_seed import BASE, TRACE, row, seed_rows, seeded_database
from typer.testing import CliRunner

from gitaudit.query.api.app import create_app
from gitaudit.query.cli.export import RowCounter, export
from gitaudit.query.cli.search import search
from gitaudit.query.export import CSV_COLUMNS, csv_chunks, severity_name
from gitaudit.query.server import BackgroundServer, free_port
from gitaudit.query.settings import Settings

N = 100_000


def _bulk_rows(n: int) -> list[tuple]:
    """n events x000000.. whose (timestamp, uid) order is the index order; triples share a timestamp."""
    return [row(f"x{i:06d}", BASE + (i // 3) * 1000, "git.fetch" if i % 2 else "git.push",
                f"bulk event {i} with a body long enough to matter, \"quoted\", comma, and 50% of a_b",
                user__id=f"user{i % 97}", audit__organization__id="acme", vcs__repository__name=f"acme/r{i % 13}",
                audit__outcome="success", audit__duration_ms=i % 1000) for i in range(n)]


@pytest.fixture(scope="module")
def bulk_server(chdb_dsn):
    """A real server over a database holding 100k events, inserted directly in blocks (shared by the module)."""
    from gitaudit.query.store.client import open_store

    db = f"t_bulk_{uuid.uuid4().hex[:8]}"
    store = open_store(chdb_dsn, db)
    rows = _bulk_rows(N)
    for i in range(0, N, 25_000):
        store.insert_rows(rows[i:i + 25_000])
    del rows
    try:
        with BackgroundServer(create_app(Settings(), store)) as srv:
            yield srv
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{db}`")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1]) / 1024


@pytest.fixture(scope="module")
def seed_server(chdb_dsn):
    """A real server over the ten seed events (shared by the module's read-only tests)."""
    for store in seeded_database(chdb_dsn):
        with BackgroundServer(create_app(Settings(), store)) as srv:
            yield srv


def _stream(url: str, params: dict, on_chunk) -> int:
    """Consume an export chunk by chunk without keeping it; return the bytes received."""
    total = 0
    with httpx.stream("GET", f"{url}/api/v1/events/export", params=params, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        for chunk in resp.iter_bytes():
            total += len(chunk)
            on_chunk(chunk)
    return total


def test_ndjson_export_of_100k_rows_is_complete_ordered_and_bounded_in_memory(bulk_server):
    """100k events stream as NDJSON, each once, newest first; process RSS stops growing after the first pages.

    Server and client share this process, so its RSS covers both; holding the
    whole result as Python objects would add ~200 MiB (measured), one page adds
    a few MiB.
    """
    state = {"rows": 0, "last": N, "tail": b"", "ordered": True, "rss": {}}

    def on_chunk(chunk: bytes) -> None:
        lines = (state["tail"] + chunk).split(b"\n")
        state["tail"] = lines.pop()
        for line in lines:
            i = int(line[9:15])  # {"uid":"x000123"...
            state["ordered"] &= i == state["last"] - 1
            state["last"] = i
            state["rows"] += 1
        state["rss"].setdefault(state["rows"] // 20_000, _rss_mib())

    size = _stream(bulk_server.url, {"q": "org:acme", "format": "ndjson"}, on_chunk)
    assert state["rows"] == N and state["ordered"] and state["last"] == 0 and state["tail"] == b""
    assert size > 50 * 2**20  # the whole result is ~60 MiB of text
    rss = state["rss"]
    growth = max(v for k, v in rss.items() if k >= 1) - rss[1]
    assert growth < 60, f"RSS grew {growth:.0f} MiB after 20k rows: {rss}"


def test_csv_export_of_100k_rows_has_every_row_and_the_columns(bulk_server):
    """100k events stream as CSV (header + a record per event, oldest first); Python heap peak stays page-sized."""
    buf = io.StringIO()
    state = {"n": 0, "newlines": 0, "peak": None}

    def on_chunk(chunk: bytes) -> None:
        state["n"] += 1
        state["newlines"] += chunk.count(b"\n")
        if state["n"] <= 2:
            buf.write(chunk.decode())
        if state["newlines"] >= 70_000 and not tracemalloc.is_tracing() and state["peak"] is None:
            tracemalloc.start()  # trace the last 30k rows (tracing everything would triple the test's time)
            tracemalloc.reset_peak()

    try:
        size = _stream(bulk_server.url, {"q": "action:git.push OR action:git.fetch", "format": "csv",
                                         "order": "asc"}, on_chunk)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert state["newlines"] == N + 1 and size > 30 * 2**20
    head = list(csv.reader(io.StringIO(buf.getvalue())))
    assert tuple(head[0]) == CSV_COLUMNS
    first = dict(zip(CSV_COLUMNS, head[1], strict=True))
    assert first["uid"] == "x000000" and first["event_name"] == "git.push" and first["severity"] == "INFO"
    assert first["body"].startswith('bulk event 0 with a body long enough to matter, "quoted", comma')
    assert json.loads(first["attributes"])["user.id"] == "user0"
    assert 0 < peak < 40, f"heap peak {peak:.1f} MiB while streaming 30k rows"


def test_csv_columns_quote_and_derive_values(seed_server):
    """CSV rows carry timestamp, uid, event, severity name, user, org, repo, outcome, ms, trace, body, attributes."""
    resp = httpx.get(f"{seed_server.url}/api/v1/events/export", params={"format": "csv", "order": "asc"})
    assert resp.headers["content-type"].startswith("text/csv")
    assert 'filename="gitaudit-events.csv"' in resp.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 11
    by_uid = {r[1]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    e1 = by_uid["e1"]
    assert (e1["timestamp"], e1["event_name"], e1["severity"], e1["user"], e1["org"], e1["repository"],
            e1["outcome"], e1["duration_ms"], e1["body"]) == (
        "2026-10-31T23:59:59.000000000Z", "git.push", "ERROR", "bob", "acme", "acme/lib", "failure", "1500.4",
        "push rejected: non-fast-forward")
    assert by_uid["e5"]["body"] == 'Asked about O\'Brien\'s "quoted" patch'
    assert by_uid["e8"]["trace_id"] == TRACE and by_uid["e8"]["user"] == ""
    assert json.loads(by_uid["e7"]["attributes"])["user.name"] == "Zoë"


def test_ndjson_export_applies_the_query_and_field_selection(seed_server):
    """NDJSON export returns the API's event objects for the query only, trimmed to the selected fields."""
    resp = httpx.get(f"{seed_server.url}/api/v1/events/export",
                     params={"q": "action:git.push -outcome:failure", "fields": "uid,attributes.user.id"})
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines == [{"uid": "e7", "attributes": {"user.id": "frank"}},
                     {"uid": "e6", "attributes": {"user.id": "erin"}},
                     {"uid": "e0", "attributes": {"user.id": "alice"}}]


def test_csv_writer_keeps_newlines_inside_fields_and_the_counter_counts_records():
    """Bodies with newlines, quotes and commas round-trip; RowCounter counts records, not lines."""
    events = [{"uid": f"u{i}", "timestamp": "t", "event_name": "x", "severity_number": 17,
               "body": 'line one\nline "two", end', "attributes": {"a": "b\nc"}} for i in range(3)]
    text = "".join(csv_chunks(events, chunk_chars=10))
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 4 and rows[1][10] == 'line one\nline "two", end' and rows[1][3] == "ERROR"
    counter = RowCounter("csv")
    data = text.encode()
    advanced = sum(counter.feed(data[i:i + 7]) for i in range(0, len(data), 7))
    assert counter.rows == 3 and advanced == 3  # the progress bar never counts the header (was 4/3)
    nd = RowCounter("ndjson")
    nd.feed(b'{"a":1}\n{"b"')
    nd.feed(b":2}\n")
    assert nd.rows == 2
    assert [severity_name(n) for n in (0, 1, 9, 12, 13, 17, 21)] == ["", "TRACE", "INFO", "INFO", "WARN", "ERROR",
                                                                      "FATAL"]


def _app(*commands) -> typer.Typer:
    app = typer.Typer()
    for c in commands:
        app.command()(c)
    return app


def test_cli_export_via_server_writes_the_whole_result(seed_server, tmp_path):
    """`gitaudit export QUERY --format csv --out FILE` against the server writes every matching event."""
    out = tmp_path / "events.csv"
    result = CliRunner().invoke(_app(export, search), ["export", "org:acme -action:git.push", "--format", "csv",
                                                       "--out", str(out), "--endpoint", seed_server.url])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open(newline="")))
    assert sorted(r[1] for r in rows[1:]) == ["e2", "e4", "e5", "e8", "e9"]
    assert "5 event(s) written" in result.output


def test_cli_export_falls_back_to_the_store_and_rejects_bad_queries(store, chdb_dsn, tmp_path, monkeypatch,
                                                                    no_server):
    """With no server, export reads the store; a bad query exits 2 with a caret and leaves no file;
    a named server that does not answer is an error, not a reason to read another dataset."""
    store.insert_rows(seed_rows())
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", store.database)
    out = tmp_path / "events.ndjson"
    app = _app(export, search)
    result = CliRunner().invoke(app, ["export", "action:git.push", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["uid"] for line in out.read_text().splitlines()] == ["e7", "e6", "e1", "e0"]
    bad = tmp_path / "bad.ndjson"
    result = CliRunner().invoke(app, ["export", "actor:", "--out", str(bad)])
    assert result.exit_code == 2 and "expected a value after 'actor:'" in result.output
    assert "      ^" in result.output and not bad.exists()
    nowhere = f"http://127.0.0.1:{free_port()}"
    named = tmp_path / "named.ndjson"
    result = CliRunner().invoke(app, ["export", "action:git.push", "--out", str(named), "--endpoint", nowhere])
    assert result.exit_code == 2 and f"no server answered at {nowhere} (from --endpoint)" in result.output
    assert not named.exists()
    monkeypatch.setenv("GITAUDIT_ENDPOINT", nowhere)
    result = CliRunner().invoke(app, ["search", "action:git.push"])
    assert result.exit_code == 2 and "(from the environment" in result.output


def test_cli_search_takes_the_language_and_shortcuts(seed_server):
    """`gitaudit search QUERY` runs the language on the server; options AND with it; errors show a caret."""
    app = _app(export, search)
    result = CliRunner().invoke(app, ["search", "action:git.push -outcome:failure", "--json",
                                      "--endpoint", seed_server.url])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["uid"] for line in result.output.splitlines()] == ["e7", "e6", "e0"]
    result = CliRunner().invoke(app, ["search", "action:git.push", "--user", "alice", "--json",
                                      "--endpoint", seed_server.url])
    assert [json.loads(line)["uid"] for line in result.output.splitlines()] == ["e0"]
    result = CliRunner().invoke(app, ["search", "(actor:alice", "--endpoint", seed_server.url])
    assert result.exit_code == 2 and "position 12: expected ')'" in result.output
