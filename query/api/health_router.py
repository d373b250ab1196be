"""``/healthz``: liveness plus a store round trip."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..store.client import StoreError
from .deps import StoreDep
from .models import HealthPublic
from .stream_router import stream_health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def healthz(store: StoreDep, request: Request):
    """``ok`` with the event count when the store answers, 503 otherwise.

    ``status`` is ``degraded`` (still 200) when a streaming destination stays down;
    ``stream`` gives subscribers and destination states.
    """
    stream = stream_health(request.app)
    try:
        count = await run_in_threadpool(store.count)
    except StoreError:
        return JSONResponse(status_code=503, content={"status": "degraded", "store": "unavailable", "events": 0,
                                                      "stream": stream})
    status = "degraded" if stream and stream.get("status") == "degraded" else "ok"
    return HealthPublic(status=status, store="ok", events=count, stream=stream)
