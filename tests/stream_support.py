"""Helpers shared by the stream tests: an app with the stream attached, SSE readers, workloads."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from gitaudit.query.api.app import create_app
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings
from gitaudit.query.stream_sse import SSEMessage, parse_sse


def stream_app(store, settings: Settings | None = None):
    """``create_app`` plus the stream router and hub (a no-op where the app already wires them)."""
    return create_app(settings or Settings(), store)  # create_app wires the stream hub and router


@contextmanager
def stream_server(store, settings: Settings | None = None) -> Iterator[BackgroundServer]:
    """A real server (uvicorn on a free loopback port) with the live stream running."""
    with BackgroundServer(stream_app(store, settings)) as srv:
        yield srv


def otlp_json(records: list[dict[str, Any]]) -> bytes:
    """An OTLP/JSON request; each record dict: name, body, attrs (str values), time_ns (optional)."""
    logs = []
    for r in records:
        logs.append({
            "timeUnixNano": str(r.get("time_ns", time.time_ns())), "eventName": r["name"],
            "severityNumber": 9, "body": {"stringValue": r.get("body", "")},
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in r.get("attrs", {}).items()],
        })
    return json.dumps({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "stream-test"}}]},
        "scopeLogs": [{"scope": {"name": "t"}, "logRecords": logs}]}]}).encode()


def post_logs(url: str, records: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
    """POST records to ``/v1/logs``; asserts the server accepted them."""
    resp = httpx.post(f"{url}/v1/logs", content=otlp_json(records),
                      headers={"Content-Type": "application/json", **(headers or {})}, timeout=30)
    assert resp.status_code == 200, resp.text


class SSEReader:
    """Reads one SSE connection in a thread, collecting parsed messages.

    Args:
        url: server base URL.
        params: query parameters of ``/api/v1/stream``.
        headers: extra headers (``Last-Event-ID``, ``Authorization``).
        stop_after: close after this many event messages (None: until :meth:`close`).
    """

    def __init__(self, url: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                 stop_after: int | None = None) -> None:
        self.url = f"{url}/api/v1/stream"
        self.params = params or {}
        self.headers = headers or {}
        self.stop_after = stop_after
        self.messages: list[SSEMessage] = []
        self.received_at: list[float] = []
        self.comments = 0
        self.status: int | None = None
        self.error: str | None = None
        self.live = threading.Event()
        self.done = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SSEReader:
        """Connect; returns once the replay caught up (``event: live``) or the request failed."""
        self._thread.start()
        assert self.live.wait(15) or self.done.wait(0), "stream did not go live"
        return self

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, params=self.params, headers=self.headers,
                              timeout=httpx.Timeout(10, read=30)) as resp:
                self.status = resp.status_code
                if resp.status_code != 200:
                    resp.read()
                    self.error = resp.text
                    return
                lines = resp.iter_lines()
                for msg in parse_sse(self._count_comments(lines)):
                    self.messages.append(msg)
                    self.received_at.append(time.time())
                    if msg.event == "live":
                        self.live.set()
                    if msg.event == "dropped" or self._closing.is_set():
                        return
                    if self.stop_after is not None and len(self.events()) >= self.stop_after:
                        return
        except httpx.HTTPError as exc:
            self.error = type(exc).__name__
        finally:
            self.live.set()
            self.done.set()

    def _count_comments(self, lines):
        for line in lines:
            if line.startswith(":"):
                self.comments += 1
            yield line
            if self._closing.is_set():
                return

    def events(self) -> list[SSEMessage]:
        """The event messages received (unnamed SSE messages)."""
        return [m for m in list(self.messages) if m.event == "message"]

    def uids(self) -> list[str]:
        """Ids of the events received, in order."""
        return [m.id for m in self.events()]

    def wait_for(self, n: int, timeout_s: float = 15.0) -> bool:
        """Wait until ``n`` events arrived (or the connection ended); True when they did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.events()) >= n:
                return True
            if self.done.is_set():
                return len(self.events()) >= n
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Stop reading (at the next line)."""
        self._closing.set()
        self._thread.join(5)
