"""Background jobs of the server (sealing, retention, scheduled reports): one way to stop them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_task(app: Any, attribute: str) -> None:
    """Cancel the asyncio task kept on ``app.state.<attribute>`` and wait for it to finish.

    The attribute is reset to None first, so calling this twice is harmless; a
    task that was never started (None) is a no-op.
    """
    task = getattr(app.state, attribute, None)
    setattr(app.state, attribute, None)
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
