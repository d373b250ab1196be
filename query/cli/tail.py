"""``gitaudit tail``: follow live audit events from the running server.

Connects to ``GET /api/v1/stream`` (Server-Sent Events) and prints one colored
line per event, or the event JSON with ``--json`` (one per line). When the
connection drops, or the server sends a ``dropped`` notice because this
terminal fell behind, it reconnects by itself with ``Last-Event-ID`` and
resumes exactly after the last event printed (backoff 0.5 s doubling to 10 s).

The API key, when the server needs one, is read from ``GITAUDIT_API_KEY``
(never from the command line); the server URL from ``--endpoint`` or
``GITAUDIT_ENDPOINT``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_OUTCOME_STYLE = {"success": "green", "failure": "bold red", "denied": "yellow"}


def event_line(e: dict[str, Any]) -> Text:
    """One line for an event: time (UTC), name, outcome, user, org, repository, ref, body.

    Built as a rich ``Text`` (no markup parsing), so event content is shown literally.
    """
    a = e.get("attributes", {})
    outcome = a.get("audit.outcome", "")
    line = Text()
    line.append(e.get("timestamp", "")[:23].replace("T", " ") + "Z ", style="dim")
    line.append(f"{e.get('event_name', ''):<16} ", style="cyan")
    line.append(f"{outcome:<8} ", style=_OUTCOME_STYLE.get(outcome, ""))
    for key, style in (("user.id", "bold"), ("audit.organization.id", "magenta"),
                       ("vcs.repository.name", "blue"), ("vcs.ref.head.name", "")):
        if a.get(key):
            line.append(a[key], style=style)
            line.append(" ")
    body = " ".join(str(e.get("body", "")).split())
    if body:
        line.append(body[:120], style="dim")
    return line


def tail(
    query: str = typer.Argument(None, help="filter in the search language, e.g. 'action:git.push outcome:failure' "
                                           "(starting with '-': put '--' before it)"),
    as_json: bool = typer.Option(False, "--json", help="print each event as one JSON line"),
    since: str = typer.Option(None, "--since", help="start: event id, cursor, 'now' (default) or a time"),
    org: list[str] = typer.Option([], "--org", help="organization id to narrow to, repeatable"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
    max_events: int = typer.Option(0, "--max-events", min=0, help="exit after this many events (0: follow forever)"),
    read_timeout_s: float = typer.Option(90.0, "--read-timeout", min=1.0,
                                         help="reconnect when nothing (not even a heartbeat) arrives for this long"),
) -> None:
    """Follow live audit events (reconnects and resumes by itself). Ctrl-C to stop."""
    import httpx

    from gitaudit.instrumentation.configuration import ENV_API_KEY, resolve_endpoint

    from ..stream_sse import parse_sse

    url = f"{resolve_endpoint(endpoint)}/api/v1/stream"
    params: dict[str, Any] = {k: v for k, v in (("q", query), ("org", org)) if v}
    headers = {"Accept": "text/event-stream"}
    key = os.environ.get(ENV_API_KEY)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    resume = since
    printed = 0
    backoff = 0.5
    timeout = httpx.Timeout(10.0, read=read_timeout_s)
    try:
        while True:
            h = dict(headers)
            if resume:
                h["Last-Event-ID"] = resume
            try:
                with httpx.stream("GET", url, params=params, headers=h, timeout=timeout) as resp:
                    if resp.status_code != 200:
                        detail = _detail(resp)
                        if resp.status_code in (400, 401, 403, 404, 422):
                            err.print(Text(f"error: {detail}", style="red"))
                            raise typer.Exit(2)
                        raise _Retry(f"server answered {resp.status_code}: {detail}")
                    backoff = 0.5
                    for msg in parse_sse(resp.iter_lines()):
                        if msg.event == "live":  # caught up: the cursor is exactly where we are
                            resume = json.loads(msg.data).get("cursor") or resume
                        elif msg.event == "dropped":
                            resume = json.loads(msg.data).get("cursor") or resume
                            err.print(Text("(fell behind: resuming from the store)", style="yellow"))
                            break
                        elif msg.event == "message":
                            event = json.loads(msg.data)
                            if as_json:
                                print(msg.data, flush=True)
                            else:
                                out.print(event_line(event))
                            resume = msg.id or resume
                            printed += 1
                            if max_events and printed >= max_events:
                                return
                    else:
                        raise _Retry("the server closed the stream")
                    continue  # dropped: reconnect at once
            except (httpx.TransportError, _Retry) as exc:
                err.print(Text(f"(disconnected: {_reason(exc)}; reconnecting in {backoff:.1f} s)", style="dim"))
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
    except KeyboardInterrupt:
        return


class _Retry(Exception):
    """A condition worth reconnecting for."""


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _Retry) else type(exc).__name__


def _detail(resp: Any) -> str:
    resp.read()
    try:
        return str(resp.json().get("detail", ""))[:300]
    except ValueError:
        return resp.text[:300]
