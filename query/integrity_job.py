"""The server's scheduled sealer: an asyncio task that seals closed windows every N seconds.

Wire it into the app lifespan::

    start_sealer(app)          # after app.state.store / .ingest are set
    yield
    await stop_sealer(app)

Configuration (see :mod:`gitaudit.query.integrity_settings`): ``GITAUDIT_SEAL_INTERVAL_S``
(default 300, 0 disables), ``GITAUDIT_SEAL_WINDOW_S`` (3600), ``GITAUDIT_SEAL_GRACE_S`` (60),
``GITAUDIT_SIGNING_KEY_FILE``. The first run happens one interval after start.
Each run that made digests records one ``security.event`` (``audit.seal``) per
organization (:mod:`gitaudit.query.integrity_events`). A failed run is logged
(message only, never a key) and retried at the next interval; it never stops the server.
In a cluster deployment run the sealer on one replica only (0 elsewhere): two
sealers racing would fork a chain, which :func:`~gitaudit.query.integrity.verify` reports.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .background import cancel_task
from .integrity import SealReport, seal
from .integrity_events import record_seal
from .integrity_keys import load_signing_key
from .integrity_settings import IntegritySettings

log = logging.getLogger("gitaudit.integrity")


def run_seal_once(state: Any, settings: IntegritySettings | None = None) -> SealReport:
    """Seal now with ``state.store`` and record the run through ``state.ingest`` (blocking).

    Args:
        state: an object with ``store`` and ``ingest`` (the app's ``app.state``);
            ``state.signing_key`` is used when set.
        settings: integrity settings (default: from the environment).
    """
    settings = settings or IntegritySettings()
    key = getattr(state, "signing_key", None) or load_signing_key(settings.key_path())
    report = seal(state.store, window_ns=settings.window_ns, grace_ns=int(settings.seal_grace_s * 1e9), key=key)
    if report.digests:
        record_seal(state.ingest, report)
    return report


async def _loop(app: Any, settings: IntegritySettings) -> None:
    while True:
        await asyncio.sleep(settings.seal_interval_s)
        run = asyncio.ensure_future(asyncio.to_thread(run_seal_once, app.state, settings))
        try:
            report = await asyncio.shield(run)
        except asyncio.CancelledError:
            # Let a run in progress finish its writes before the store closes.
            await asyncio.gather(run, return_exceptions=True)
            raise
        except Exception as exc:  # noqa: BLE001 - a failed run is retried next interval
            log.error("integrity seal run failed: %s: %s", type(exc).__name__, str(exc)[:300])
            continue
        if report.digests:
            log.info("sealed %d window(s), %d addendum digest(s), %d event(s)",
                     report.windows_sealed, report.addenda_sealed, report.events_sealed)


def start_sealer(app: Any, settings: IntegritySettings | None = None) -> asyncio.Task | None:
    """Start the sealer task on the running event loop (call from the lifespan); None when disabled.

    The task is kept on ``app.state.sealer_task``.
    """
    settings = settings or IntegritySettings()
    task = None
    if settings.seal_interval_s > 0:
        if getattr(app.state, "signing_key", None) is None:
            # Create the key now, not at the first seal: `gitaudit public-key`, `verify` and the SOC 2
            # report then find it from the start (and say "nothing sealed yet" rather than "no key").
            try:
                load_signing_key(settings.key_path())
            except Exception as exc:  # noqa: BLE001 - the sealer retries and logs at each run
                log.error("integrity signing key unavailable: %s", str(exc)[:300])
        task = asyncio.get_running_loop().create_task(_loop(app, settings), name="gitaudit-sealer")
    app.state.sealer_task = task
    return task


async def stop_sealer(app: Any) -> None:
    """Cancel the sealer task and wait for it (a run in progress finishes its current write first)."""
    await cancel_task(app, "sealer_task")
