"""Storage: bytes per event on disk and compression ratio of ``otel_logs``.

Run::

    .venv/bin/python -m benchmarks --only storage [--events N]

Reads ``system.parts`` (active parts of the table): ``bytes_on_disk`` (data,
marks, primary key and skip/text indexes) divided by rows, and
``data_uncompressed_bytes / data_compressed_bytes``; the largest columns from
``system.columns`` show where the bytes go. The table is first merged
(``OPTIMIZE ... FINAL``) so the figure is that of a settled table, not of
freshly inserted small parts.
"""

from __future__ import annotations

from typing import Any

from .common import print_table, size_label, write_result


def table_storage(store, table: str = "otel_logs", optimize: bool = True) -> dict[str, Any]:
    """Storage facts of ``store.database.table``.

    Returns:
        ``{"rows", "bytes_on_disk", "bytes_per_event", "compressed_bytes",
        "uncompressed_bytes", "compression_ratio", "parts", "columns": [{"name", "compressed",
        "uncompressed"}...], "indexes": [{"name", "type", "bytes"}...]}`` (bytes; columns
        largest first, top 12; skip/text indexes largest first).
    """
    if optimize:
        store.command(f"OPTIMIZE TABLE {store.qualified(table)} FINAL")
    params = {"db": store.database, "t": table}
    rows, on_disk, comp, uncomp, parts = store.query(
        "SELECT sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes), count() "
        "FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active", params)[0]
    cols = store.query(
        "SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY data_compressed_bytes DESC LIMIT 12", params)
    idx = store.query(
        "SELECT name, type, data_compressed_bytes FROM system.data_skipping_indices "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY data_compressed_bytes DESC", params)
    rows = int(rows or 0)
    return {
        "indexes": [{"name": n, "type": t, "bytes": int(b)} for n, t, b in idx],
        "rows": rows,
        "bytes_on_disk": int(on_disk or 0),
        "bytes_per_event": (on_disk or 0) / rows if rows else 0.0,
        "compressed_bytes": int(comp or 0),
        "uncompressed_bytes": int(uncomp or 0),
        "compression_ratio": (uncomp or 0) / comp if comp else 0.0,
        "parts": int(parts or 0),
        "columns": [{"name": n, "compressed": int(c), "uncompressed": int(u)} for n, c, u in cols],
    }


def run(dataset, *, results_dir=None, quiet: bool = False) -> dict[str, Any]:
    """Measure storage of a loaded :class:`~benchmarks.common.Dataset`; print and write ``storage_<size>.json``."""
    facts = table_storage(dataset.store)
    label = size_label(dataset.n_events)
    if not quiet:
        print_table(f"Storage at {label} events (otel_logs, merged)", ["measure", "value"], [
            ("rows", facts["rows"]),
            ("bytes on disk (incl. indexes)", facts["bytes_on_disk"]),
            ("bytes per event", facts["bytes_per_event"]),
            ("compression ratio", facts["compression_ratio"]),
            ("active parts", facts["parts"]),
        ])
        print_table("Largest columns (compressed bytes per event)", ["column", "bytes/event", "ratio"], [
            (c["name"], c["compressed"] / max(facts["rows"], 1), c["uncompressed"] / max(c["compressed"], 1))
            for c in facts["columns"]])
        if facts["indexes"]:
            print_table("Skip and text indexes (bytes per event)", ["index", "type", "bytes/event"], [
                (i["name"], i["type"], i["bytes"] / max(facts["rows"], 1)) for i in facts["indexes"]])
    write_result(f"storage_{label}", {"n_events": dataset.n_events, "seed": dataset.seed, **facts}, results_dir)
    return facts
