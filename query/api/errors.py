"""Exception handlers: every error is a JSON body naming the problem, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..search import SearchError
from ..store.client import StoreError

log = logging.getLogger("gitaudit.api")


def time_param(value: str | None, name: str, error: type[Exception] = SearchError) -> int | None:
    """Parse query parameter ``name`` (RFC 3339, a date, Unix ns, now or -7d) to Unix ns UTC; None stays None.

    Raises:
        ``error`` (a 400 here) naming the parameter when the value is not a time.
    """
    from ..timefmt import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise error(f"{name}: {exc}") from None


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map gitaudit's exceptions to 4xx/503 and hide anything unexpected behind a 500."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": _validation_message(exc)})

    @app.exception_handler(SearchError)
    async def _search(_: Request, exc: SearchError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return JSONResponse(
            status_code=503, content={"detail": "the store is unavailable; retry later"},
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        log.error("unexpected error: %s", type(exc).__name__)
        return JSONResponse(status_code=500, content={"detail": "internal error"})
