"""Shared fixtures: an in-memory OTel pipeline, temporary git identities."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from gitaudit.instrumentation import set_logger_provider


@dataclass
class CapturedEvents:
    """Records emitted through gitaudit during one test (real OTel SDK pipeline)."""

    exporter: InMemoryLogRecordExporter

    def records(self) -> list[ReadableLogRecord]:
        """All finished records, in emission order."""
        return list(self.exporter.get_finished_logs())

    def named(self, event_name: str) -> list[ReadableLogRecord]:
        """Records whose EventName equals ``event_name``."""
        return [r for r in self.records() if r.log_record.event_name == event_name]

    def one(self, event_name: str) -> ReadableLogRecord:
        """The single record named ``event_name`` (fails when 0 or several)."""
        found = self.named(event_name)
        assert len(found) == 1, f"expected one {event_name}, got {[r.log_record.event_name for r in self.records()]}"
        return found[0]

    def attrs(self, event_name: str) -> dict:
        """Attributes of the single record named ``event_name``."""
        return dict(self.one(event_name).log_record.attributes)

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def audit_events() -> Iterator[CapturedEvents]:
    """Route gitaudit's events into memory for the test, then restore."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    set_logger_provider(provider)
    try:
        yield CapturedEvents(exporter)
    finally:
        set_logger_provider(None)
        provider.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory) -> None:
    """Keep default spools and agent state files out of the real home directory."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))


@pytest.fixture(autouse=True, scope="session")
def _git_identity() -> None:
    """Give real git a committer identity and no user/system config surprises."""
    os.environ.setdefault("GIT_AUTHOR_NAME", "Test Author")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "author@example.com")
    os.environ.setdefault("GIT_COMMITTER_NAME", "Test Committer")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "committer@example.com")
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ.setdefault("GIT_TERMINAL_PROMPT", "0")


# --- the store -----------------------------------------------------------------
# chDB opens one directory per process, so the whole session shares one embedded
# store directory and each test gets its own database inside it.


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory) -> str:
    """DSN of the session's on-disk chDB store."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def store(chdb_dsn):
    """A freshly migrated, empty database in the session's real chDB store."""
    import uuid as _uuid

    from gitaudit.query.store.client import open_store

    db = f"t_{_uuid.uuid4().hex[:12]}"
    s = open_store(chdb_dsn, db)
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{db}`")


@pytest.fixture
def no_server(monkeypatch) -> None:
    """No server is named (GITAUDIT_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT unset) and none answers on the
    default endpoint, so the read commands fall back to the store, as on a machine with no server running."""
    import socket

    monkeypatch.delenv("GITAUDIT_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    with socket.socket() as s:
        s.settimeout(0.2)
        assert s.connect_ex(("127.0.0.1", 4318)) != 0, "something listens on 127.0.0.1:4318, the default endpoint"
