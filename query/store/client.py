"""The store: a clickhouse-connect client on chDB (embedded) or a ClickHouse server.

One code path for both deployments (DESIGN.md section 1): the DSN selects the
engine. ``chdb://<path>`` opens ClickHouse's in-process engine on a directory
(relative paths are resolved against the working directory and created);
``http://`` / ``https://`` DSNs reach a ClickHouse server over HTTP.

Only one process may open a chDB directory, and one process can open only one
chDB directory at a time; :func:`open_store` therefore keeps one client per
process and refuses a second, different path with :class:`StoreError`.

All statements with values use server-side bound parameters (``{name:Type}``);
identifiers come from configuration and are validated.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .schema import INSERT_COLUMNS, validate_identifier


class StoreError(RuntimeError):
    """The store cannot be opened or a statement failed; ``str()`` is safe to show."""


_lock = threading.Lock()
_chdb_client: Any = None
_chdb_path: str | None = None


def _chdb_dir(dsn: str) -> str:
    raw = dsn[len("chdb://"):]
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path.mkdir(parents=True, exist_ok=True)
    return str(path.resolve())


def _connect(dsn: str) -> tuple[Any, str | None]:
    import clickhouse_connect

    global _chdb_client, _chdb_path
    scheme = urlsplit(dsn).scheme
    if scheme == "chdb":
        path = _chdb_dir(dsn)
        with _lock:
            if _chdb_client is not None:
                if _chdb_path != path:
                    raise StoreError(
                        f"this process already has the embedded store at {_chdb_path} open; "
                        f"chDB opens one directory per process"
                    )
                return _chdb_client, None
            try:
                _chdb_client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            except Exception as exc:  # noqa: BLE001 - reported as StoreError
                raise StoreError(
                    f"cannot open the embedded store at {path}: {_short(exc)} "
                    "(is another gitaudit process using it? only one may open it)"
                ) from None
            _chdb_path = path
            return _chdb_client, None
    if scheme in ("http", "https"):
        parts = urlsplit(dsn)
        database = parts.path.strip("/") or None
        try:
            client = clickhouse_connect.get_client(dsn=dsn)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot reach ClickHouse at {parts.hostname}:{parts.port}: {_short(exc)}") from None
        return client, database
    raise StoreError(f"unsupported store DSN scheme {scheme!r}: use chdb:// or http(s)://")


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text[:limit]


def close_embedded() -> None:
    """Close the process's embedded chDB client (tests, shutdown)."""
    global _chdb_client, _chdb_path
    with _lock:
        if _chdb_client is not None:
            try:
                _chdb_client.close()
            finally:
                _chdb_client = None
                _chdb_path = None


class Store:
    """Typed access to one database of the store.

    Args:
        client: a clickhouse-connect client.
        database: database name (validated identifier).
        table: the logs table name (default ``otel_logs``).
    """

    def __init__(self, client: Any, database: str, table: str = "otel_logs") -> None:
        self.client = client
        self.database = validate_identifier(database)
        self.table_name = validate_identifier(table)
        self._write_lock = threading.Lock()

    @property
    def table(self) -> str:
        """Fully qualified, quoted table name for SQL."""
        return f"`{self.database}`.`{self.table_name}`"

    def qualified(self, name: str) -> str:
        """Quoted ``database.name`` for another table of this store."""
        return f"`{self.database}`.`{validate_identifier(name)}`"

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        """Run a SELECT with bound parameters and return its rows."""
        try:
            return self.client.query(sql, parameters=parameters or {}).result_rows
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"query failed: {_short(exc)}") from None

    def query_columns(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run a SELECT and return ``(column_names, rows)``."""
        try:
            result = self.client.query(sql, parameters=parameters or {})
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"query failed: {_short(exc)}") from None
        return list(result.column_names), result.result_rows

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, mutations)."""
        try:
            return self.client.command(sql, parameters=parameters or {})
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"statement failed: {_short(exc)}") from None

    def insert_rows(self, rows: Sequence[Sequence[Any]], columns: Sequence[str] = INSERT_COLUMNS) -> int:
        """Insert rows (tuples in ``columns`` order) in one INSERT; returns the count.

        The insert is one block: it is written whole or not at all.
        """
        if not rows:
            return 0
        with self._write_lock:
            try:
                self.client.insert(
                    self.table_name, list(rows), column_names=list(columns), database=self.database
                )
            except Exception as exc:  # noqa: BLE001
                raise StoreError(f"insert failed: {_short(exc)}") from None
        return len(rows)

    def existing_uids(self, uids: Sequence[str]) -> set[str]:
        """Return which of ``uids`` are already stored (dedup on ``log.record.uid``)."""
        if not uids:
            return set()
        rows = self.query(
            f"SELECT DISTINCT Uid FROM {self.table} WHERE Uid IN {{uids:Array(String)}}",
            {"uids": list(uids)},
        )
        return {r[0] for r in rows}

    def count(self) -> int:
        """Number of rows in ``otel_logs`` (for tests and health)."""
        return int(self.query(f"SELECT count() FROM {self.table}")[0][0])


def open_store(dsn: str, database: str = "gitaudit", *, migrate: bool = True) -> Store:
    """Open the store named by ``dsn`` and (by default) apply pending migrations.

    Args:
        dsn: ``chdb://<dir>`` or ``http(s)://user:pass@host:port/db``.
        database: database for chdb DSNs (an http DSN's path overrides it).
        migrate: apply :data:`~gitaudit.query.store.schema.MIGRATIONS`.

    Raises:
        StoreError: the store cannot be opened, or a migration failed.
    """
    client, dsn_db = _connect(dsn)
    store = Store(client, dsn_db or database)
    if migrate:
        from .migrate import apply_migrations

        apply_migrations(store)
    return store
