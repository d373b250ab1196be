"""How CLI commands talk to a running gitaudit server: the API key and one request helper."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console

err = Console(stderr=True)


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer $GITAUDIT_API_KEY`` when the variable is set, else no header."""
    from gitaudit.instrumentation.configuration import ENV_API_KEY

    key = os.environ.get(ENV_API_KEY)
    return {"Authorization": f"Bearer {key}"} if key else {}


def call_server(method: str, endpoint: str | None, path: str, params: dict[str, Any],
                timeout_s: float = 60.0) -> Any | None:
    """Send one request to the server and return its JSON.

    Args:
        method: HTTP method.
        endpoint: server base URL (None: ``GITAUDIT_ENDPOINT`` or the default).
        path: API path, e.g. ``/api/v1/analytics/counts``.
        params: query parameters; empty values are left out.
        timeout_s: request timeout, seconds.

    Returns:
        The decoded JSON body, or None when no server answers (the caller then opens the store).

    Raises:
        typer.Exit: code 2 after printing the server's error detail, on any non-200 reply.
    """
    import httpx

    from gitaudit.instrumentation.configuration import resolve_endpoint

    try:
        resp = httpx.request(method, f"{resolve_endpoint(endpoint)}{path}",
                             params={k: v for k, v in params.items() if v not in (None, [], "")},
                             headers=auth_headers(), timeout=timeout_s)
    except httpx.TransportError:
        return None
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail", resp.text[:200])
        except ValueError:
            detail = resp.text[:200]
        err.print(f"error: {detail}", markup=False, highlight=False)
        raise typer.Exit(2)
    return resp.json()
