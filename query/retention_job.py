"""The scheduled retention job of the server: an asyncio task the app's lifespan starts and stops.

``GITAUDIT_RETENTION_INTERVAL_S`` (seconds, default 0 = off): every interval
the task runs :func:`gitaudit.query.retention_apply.apply_retention` in a
worker thread (so the event loop keeps serving), over all organizations,
resuming any interrupted run first. A failing run is logged (message only,
never credentials) and retried at the next interval; a run still in progress
when the next is due is skipped (``RetentionBusy``).

Runs are serialized within one process; with several server replicas on one
ClickHouse cluster, enable the interval on one replica only (two concurrent
runs would each plan the same rows).

Usage in the lifespan::

    start_retention_job(app)   # after app.state.store / ingest are set
    yield
    await stop_retention_job(app)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .background import cancel_task
from .archive import ArchiveTarget
from .retention_apply import RetentionRuntime, apply_retention
from .retention_policies import RetentionSettings

__all__ = ["start_retention_job", "stop_retention_job"]

log = logging.getLogger("gitaudit.retention")


def start_retention_job(app: Any, settings: RetentionSettings | None = None,
                        runtime: RetentionRuntime | None = None) -> asyncio.Task | None:
    """Start the periodic retention task on the running loop; returns it (None when the interval is 0).

    Args:
        app: the FastAPI app (``app.state.store`` and ``app.state.ingest`` set).
        settings: retention settings (default: the environment).
        runtime: the runtime to use (default: built from ``app.state`` and ``GITAUDIT_S3_*``);
            stored as ``app.state.retention_runtime`` for the API to share.
    """
    settings = settings or RetentionSettings()
    if settings.retention_interval_s <= 0:
        app.state.retention_task = None
        return None
    if runtime is None:
        runtime = getattr(app.state, "retention_runtime", None) or RetentionRuntime(
            app.state.store, settings, ArchiveTarget.from_settings(), getattr(app.state, "ingest", None),
            actor="gitaudit-retention-job")
    app.state.retention_runtime = runtime
    interval = settings.retention_interval_s

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                report = await asyncio.to_thread(apply_retention, runtime)
                log.info("retention run: %d archived, %d deleted, %d held", report.archived, report.deleted,
                         report.held)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged, retried next interval
                log.error("retention run failed: %s", " ".join(str(exc).split())[:300])

    task = asyncio.get_running_loop().create_task(loop(), name="gitaudit-retention")
    app.state.retention_task = task
    return task


async def stop_retention_job(app: Any) -> None:
    """Cancel the task started by :func:`start_retention_job` and wait for it (no-op when none)."""
    await cancel_task(app, "retention_task")
