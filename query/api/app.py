"""The FastAPI application factory (no import-time side effects).

``create_app(settings)`` builds the app; the store is opened in the lifespan
(or passed in, for tests and the embedded demo). One port serves OTLP ingest
(``/v1/logs``) and the query API (``/api/v1/...``), with OpenAPI docs at
``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gitaudit.instrumentation.version import __version__

from ..ingest.service import IngestService
from ..settings import Settings
from ..store.client import Store, open_store
from . import events_router, health_router, ingest_router, keys_router
from .auth import auth_enabled
from .errors import install_error_handlers


def create_app(settings: Settings | None = None, store: Store | None = None, sanitizer=None) -> FastAPI:
    """Build the gitaudit server app.

    Args:
        settings: server settings (default: from the environment).
        store: an open store to use; when None the lifespan opens
            ``settings.clickhouse_dsn`` and applies migrations.
        sanitizer: the server-side sanitizer (default: ``Sanitizer.default()``).

    Returns:
        The FastAPI application.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from gitaudit.processors import Sanitizer

        app.state.settings = settings
        app.state.auth_enabled = auth_enabled(settings)
        app.state.store = store or open_store(settings.clickhouse_dsn, settings.database)
        app.state.ingest = IngestService(app.state.store, sanitizer or Sanitizer.default())
        yield

    app = FastAPI(
        title="gitaudit",
        version=__version__,
        summary="Audit trail for git operations: OTLP/HTTP logs ingest and the audit query API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(ingest_router.router)
    app.include_router(events_router.router)
    app.include_router(health_router.router)
    app.include_router(keys_router.router)
    return app
