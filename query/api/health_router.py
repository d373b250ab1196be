"""``/healthz``: liveness plus a store round trip."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..store.client import StoreError
from .deps import StoreDep
from .models import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def healthz(store: StoreDep):
    """``ok`` with the event count when the store answers, 503 otherwise."""
    try:
        count = await run_in_threadpool(store.count)
    except StoreError:
        return JSONResponse(status_code=503, content={"status": "degraded", "store": "unavailable", "events": 0})
    return HealthPublic(status="ok", store="ok", events=count)
