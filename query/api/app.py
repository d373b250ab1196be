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
from . import (analytics_router, events_router, health_router, ingest_router, integrity_router, keys_router,
               reports_router, retention_router, stream_router)
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

        from ..gdpr_keys import wrap_sanitizer
        from ..integrity_job import start_sealer, stop_sealer
        from ..report_schedule import start_report_scheduler, stop_report_scheduler
        from ..retention_job import start_retention_job, stop_retention_job

        app.state.settings = settings
        app.state.auth_enabled = auth_enabled(settings)
        app.state.store = store or open_store(settings.clickhouse_dsn, settings.database)
        # GDPR subject pseudonyms (when enabled) are applied after the sanitizer, at ingest.
        app.state.ingest = IngestService(app.state.store,
                                         wrap_sanitizer(sanitizer or Sanitizer.default(), app.state.store))
        stream_router.attach_stream(app)
        start_sealer(app)
        start_retention_job(app)
        start_report_scheduler(app)
        try:
            yield
        finally:
            await stop_report_scheduler(app)
            await stop_retention_job(app)
            await stop_sealer(app)
            stream_router.detach_stream(app)

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
    app.include_router(analytics_router.router)
    app.include_router(integrity_router.router)
    app.include_router(retention_router.router)
    app.include_router(reports_router.router)
    app.include_router(stream_router.router)
    app.state.stream_router_included = True
    return app
