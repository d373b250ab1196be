"""A local stand-in for the Anthropic Messages API, for tests and the offline demo.

It is a threaded stdlib ``http.server`` on loopback that answers
``POST /v1/messages`` the way the real API does, closely enough for the real
``anthropic`` Python client:

* plain JSON ``Message`` responses, with ``usage`` including
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens``;
* ``"stream": true`` as Server-Sent Events in the real order: ``message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta`` (one per chunk),
  ``content_block_stop``, ``message_delta`` (stop reason, final usage),
  ``message_stop``; optionally an ``error`` event part-way;
* error responses with the API's body (``{"type": "error", "error": {"type":
  ..., "message": ...}}``), e.g. 429 ``rate_limit_error`` or 529
  ``overloaded_error``, with optional ``retry-after-ms`` so client retries are
  fast in tests.

Answers come from a queue of :class:`CannedResponse` (consumed in order), and
when it is empty from the default responder: if the last user message holds a
``<conflicted_file>`` element, the reply is that file merged deterministically
(both sides of every conflict region kept, ours first, markers removed; a side
identical to the other is kept once), else a short acknowledgement. It makes no
network call and holds no credentials; any ``x-api-key`` is accepted.

Usage::

    with ClaudeStandIn() as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="test-key")
        server.enqueue(CannedResponse.overloaded())
        ...

Run standalone: ``python -m gitaudit.instrumentation.claude_standin --port 8765``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


def _next_id(prefix: str) -> str:
    return f"{prefix}_standin{next(_ids):08d}"


@dataclass(frozen=True)
class CannedResponse:
    """One answer of the stand-in.

    Attributes:
        text: the assistant text (success responses).
        model: the response model (default: the requested model).
        stop_reason: ``end_turn``, ``max_tokens``, ``stop_sequence``, ...
        input_tokens / output_tokens: usage (default: about bytes/4 of prompt / text).
        cache_read_input_tokens / cache_creation_input_tokens: cache usage.
        status: HTTP status; not 200 -> an error response.
        error_type / error_message: the error body (and the SSE ``error`` event).
        retry_after_ms: sent as ``retry-after-ms`` on errors (fast client retries).
        stream_error_after: for streams, send an ``error`` event after this many
            text deltas instead of finishing.
        chunk_size: characters per ``content_block_delta``.
        delay_ms: wait before answering (each SSE chunk waits ``delay_ms/10``).
        message_id: the ``msg_...`` id (default: a fresh one).
    """

    text: str = "OK"
    model: str | None = None
    stop_reason: str = "end_turn"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    retry_after_ms: int | None = None
    stream_error_after: int | None = None
    chunk_size: int = 8
    delay_ms: int = 0
    message_id: str | None = None

    @classmethod
    def error(cls, status: int, error_type: str, message: str = "error", *,
              retry_after_ms: int | None = None) -> CannedResponse:
        """An API error response with the Anthropic error body."""
        return cls(status=status, error_type=error_type, error_message=message, retry_after_ms=retry_after_ms)

    @classmethod
    def overloaded(cls, *, retry_after_ms: int | None = 5) -> CannedResponse:
        """HTTP 529 ``overloaded_error``, as the API answers when overloaded."""
        return cls.error(529, "overloaded_error", "Overloaded", retry_after_ms=retry_after_ms)

    @classmethod
    def rate_limited(cls, *, retry_after_ms: int | None = 5) -> CannedResponse:
        """HTTP 429 ``rate_limit_error``."""
        return cls.error(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit",
                         retry_after_ms=retry_after_ms)


@dataclass
class ReceivedRequest:
    """A request the stand-in received (the API key header is not kept)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


_CONFLICTED_FILE = re.compile(r"<conflicted_file[^>]*>\n?(.*?)\n?</conflicted_file>", re.S)


def merge_conflict_markers(content: str) -> str:
    """Resolve every conflict region by keeping both sides (ours, then theirs), markers removed.

    A diff3 base section (``|||||||``) is dropped; when both sides are equal
    they are kept once. Lines outside regions are unchanged.
    """
    out: list[str] = []
    ours: list[str] = []
    theirs: list[str] = []
    state = None  # None | "ours" | "base" | "theirs"
    for line in content.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if state is None and re.match(r"^<{7}(?: |$)", bare):
            state, ours, theirs = "ours", [], []
        elif state in ("ours", "base") and re.match(r"^\|{7}(?: |$)", bare):
            state = "base"
        elif state in ("ours", "base") and bare == "=" * 7:
            state = "theirs"
        elif state == "theirs" and re.match(r"^>{7}(?: |$)", bare):
            out.extend(ours)
            if theirs != ours:
                out.extend(theirs)
            state = None
        elif state == "ours":
            ours.append(line)
        elif state == "theirs":
            theirs.append(line)
        elif state is None:
            out.append(line)
    return "".join(out)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")
    return ""


def default_responder(body: dict[str, Any]) -> CannedResponse:
    """Merge a ``<conflicted_file>`` in the last user message, else acknowledge."""
    match = _CONFLICTED_FILE.search(_last_user_text(body))
    if match:
        return CannedResponse(text=merge_conflict_markers(match.group(1)))
    return CannedResponse(text="OK")


def _approx_tokens(text: str) -> int:
    return max(1, len(text.encode("utf-8")) // 4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: tests and the demo print nothing per request

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != "/v1/messages":
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"type": "error",
                                  "error": {"type": "invalid_request_error", "message": "invalid JSON"}})
            return
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in ("x-api-key", "authorization")}
        self.server.stand_in._record(ReceivedRequest(self.path, body, headers))
        canned = self.server.stand_in._next_response(body)
        if canned.delay_ms:
            time.sleep(canned.delay_ms / 1000)
        if canned.status != 200:
            self._send_error(canned)
        elif body.get("stream"):
            self._send_stream(body, canned)
        else:
            self._send_json(200, _message(body, canned))

    def _send_json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _next_id("req"))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, canned: CannedResponse) -> None:
        extra = {"retry-after-ms": str(canned.retry_after_ms)} if canned.retry_after_ms is not None else {}
        self._send_json(canned.status, {
            "type": "error",
            "error": {"type": canned.error_type or "api_error", "message": canned.error_message or "error"},
            "request_id": _next_id("req"),
        }, extra)

    def _send_stream(self, body: dict[str, Any], canned: CannedResponse) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", _next_id("req"))
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for event, data in _sse_events(body, canned):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
            if canned.delay_ms:
                time.sleep(canned.delay_ms / 10000)


def _usage(body: dict[str, Any], canned: CannedResponse) -> dict[str, int]:
    prompt = json.dumps(body.get("messages") or []) + json.dumps(body.get("system") or "")
    return {
        "input_tokens": canned.input_tokens if canned.input_tokens is not None else _approx_tokens(prompt),
        "cache_creation_input_tokens": canned.cache_creation_input_tokens,
        "cache_read_input_tokens": canned.cache_read_input_tokens,
        "output_tokens": canned.output_tokens if canned.output_tokens is not None else _approx_tokens(canned.text),
    }


def _message(body: dict[str, Any], canned: CannedResponse) -> dict[str, Any]:
    return {
        "id": canned.message_id or _next_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": canned.model or body.get("model") or "claude-standin",
        "content": [{"type": "text", "text": canned.text}],
        "stop_reason": canned.stop_reason,
        "stop_sequence": None,
        "usage": _usage(body, canned),
    }


def _sse_events(body: dict[str, Any], canned: CannedResponse) -> Iterator[tuple[str, dict[str, Any]]]:
    message = _message(body, canned)
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    yield "message_start", {"type": "message_start", "message": start}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}
    yield "ping", {"type": "ping"}
    size = max(1, canned.chunk_size)
    chunks = [canned.text[i:i + size] for i in range(0, len(canned.text), size)] or [""]
    for n, chunk in enumerate(chunks):
        if canned.stream_error_after is not None and n >= canned.stream_error_after:
            yield "error", {"type": "error", "error": {"type": canned.error_type or "overloaded_error",
                                                      "message": canned.error_message or "Overloaded"}}
            return
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": chunk}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": canned.stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    stand_in: ClaudeStandIn


class ClaudeStandIn:
    """The stand-in server; a context manager that serves on a thread.

    Args:
        host: bind address (loopback by default).
        port: 0 picks a free port; see :attr:`url`.
        responder: ``request body -> CannedResponse`` when the queue is empty
            (default :func:`default_responder`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 responder: Callable[[dict[str, Any]], CannedResponse] | None = None) -> None:
        self._host, self._port = host, port
        self._responder = responder or default_responder
        self._queue: deque[CannedResponse] = deque()
        self._lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for ``anthropic.Anthropic(base_url=...)`` (``http://host:port``)."""
        if self._server is None:
            raise RuntimeError("stand-in not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *responses: CannedResponse) -> None:
        """Answer the next requests with ``responses``, in order."""
        with self._lock:
            self._queue.extend(responses)

    def _next_response(self, body: dict[str, Any]) -> CannedResponse:
        with self._lock:
            canned = self._queue.popleft() if self._queue else None
        if canned is None:
            canned = self._responder(body)
        if canned.status == 200 and canned.text == "" and canned.output_tokens is None:
            canned = replace(canned, output_tokens=0)
        return canned

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> ClaudeStandIn:
        """Bind and serve on a daemon thread; returns self."""
        self._server = _Server((self._host, self._port), _Handler)
        self._server.stand_in = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="claude-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ClaudeStandIn:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def main(host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the stand-in until interrupted (typer-compatible)."""
    with ClaudeStandIn(host, port) as server:
        print(f"Claude stand-in listening on {server.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


__all__ = ["CannedResponse", "ClaudeStandIn", "ReceivedRequest", "default_responder", "main",
           "merge_conflict_markers"]

if __name__ == "__main__":  # pragma: no cover
    import typer

    typer.run(main)
