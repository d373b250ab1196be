"""OpenTelemetry instrumentor for the anthropic SDK: one ``claude.request`` audit event per call.

Usage::

    from gitaudit.instrumentation.anthropic_instrumentor import AnthropicInstrumentor
    AnthropicInstrumentor().instrument()                       # content off
    AnthropicInstrumentor().instrument(capture_content=True)   # sanitized text on

or with ``opentelemetry-instrument``, through the ``opentelemetry_instrumentor``
entry point ``anthropic``. Needs the ``gitaudit[anthropic]`` extra
(``anthropic >= 0.40``).

What is wrapped (``anthropic.resources.messages``):

* ``Messages.create`` and ``AsyncMessages.create``, plain and ``stream=True``
  (the returned stream is wrapped; the event is emitted when the stream is
  exhausted, closed, or fails);
* ``Messages.stream`` and ``AsyncMessages.stream`` (the ``MessageStreamManager``
  context manager; same stream observation, so ``get_final_message()``,
  ``text_stream`` and ``until_done()`` are all seen).

One event per *logical* call, whatever the SDK's retries: the event carries the
final outcome and ``gen_ai.request.retries`` (the retries the client made,
observed through the SDK's retry sleep; 0 when none). The event time is when the
call started; it joins the trace (and audit context) active at that moment,
even for a stream consumed later.

Attributes (OTel GenAI conventions, DESIGN.md section 3):

=============================================  =====================================================
``gen_ai.provider.name``                       ``anthropic``
``gen_ai.operation.name``                      ``chat``
``gen_ai.request.model`` / ``.response.model``  requested / answering model
``gen_ai.request.max_tokens``, ``.temperature``, ``.top_p``, ``.top_k``, ``.stop_sequences``, ``.stream``
``gen_ai.response.id``                         the message id
``gen_ai.response.finish_reasons``             ``[stop_reason]``
``gen_ai.usage.input_tokens``                  input + cache read + cache creation tokens
``gen_ai.usage.output_tokens``                 output tokens
``gen_ai.usage.cache_read.input_tokens``       cache hits (also counted in input_tokens)
``gen_ai.usage.cache_creation.input_tokens``   cache writes (also counted in input_tokens)
``gen_ai.usage.cost_usd``                      from :mod:`.genai_pricing`; absent for unknown models
``gen_ai.response.time_to_first_chunk``        streams: seconds to the first ``content_block_delta``
``gen_ai.request.retries``                     retries made by the client
``gen_ai.prompt.sha256``                       always (see :mod:`.genai_content`)
``gen_ai.prompt.text`` / ``.completion.text``  only with content capture, sanitized and truncated
``server.address`` / ``server.port``           the API host
``audit.duration_ms``                          latency of the call (streams: until the last event)
``audit.outcome`` / ``error.type``             see below
``http.response.status_code``                  on API errors
=============================================  =====================================================

``error.type`` (semconv: the error's class or code): the Anthropic error code
from the response body (``rate_limit_error``, ``overloaded_error``,
``api_error``, ``invalid_request_error``, ...; also for an ``error`` event in
the middle of a stream), ``api_error_<status>`` when the body has none,
``timeout`` for ``APITimeoutError``, ``connection_error`` for other
``APIConnectionError``, ``incomplete_stream`` for a stream closed before
``message_stop``, else the exception's class name.

Configuration (argument to ``instrument()`` > environment > default):
``capture_content`` (``GITAUDIT_CAPTURE_CONTENT``), ``max_content_bytes``
(``GITAUDIT_CAPTURE_CONTENT_MAX_BYTES``), ``price_table`` (a
:class:`~.genai_pricing.PriceTable`, a mapping, or a file path;
``GITAUDIT_GENAI_PRICES``), ``sanitize`` (``str -> str``, default the gitaudit
sanitizer).

Not observed: ``with_raw_response`` / ``with_streaming_response`` calls give an
event without usage; ``messages.parse``, ``count_tokens``, batches and
``beta.messages`` are not wrapped. A stream dropped without being exhausted or
closed emits nothing.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from . import semconv as sc
from .events import emit_event
from .genai_content import ContentPolicy, content_text
from .genai_pricing import PriceTable, default_table, usage_tokens
from .resolution import record_claude_request

_log = logging.getLogger(__name__)

PROVIDER = "anthropic"
OPERATION = "chat"
INCOMPLETE_STREAM = "incomplete_stream"

_RETRIES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "gitaudit_anthropic_retries", default=None
)

_SYNC_MANAGER_ATTR = "_MessageStreamManager__api_request"
_ASYNC_MANAGER_ATTR = "_AsyncMessageStreamManager__api_request"


def error_type_of(exc: BaseException) -> tuple[str, int | None]:
    """``(error.type, HTTP status or None)`` of an exception raised by the anthropic SDK."""
    try:
        import anthropic
    except ImportError:  # pragma: no cover - the instrumentor needs anthropic
        return type(exc).__name__, None
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout", None
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection_error", None
    if isinstance(exc, anthropic.APIStatusError):
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "type", None)
        if not code and isinstance(exc.body, Mapping):
            err = exc.body.get("error")
            code = err.get("type") if isinstance(err, Mapping) else None
        if isinstance(code, str) and code:
            return code, status
        return f"api_error_{status}", status
    return type(exc).__name__, None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


class _Settings:
    def __init__(self, content: ContentPolicy, prices: PriceTable | None) -> None:
        self.content = content
        self.prices = prices
        self.retries_observable = False


class _Call:
    """One logical Messages call under observation; emits its event once."""

    def __init__(self, settings: _Settings, instance: Any, kwargs: Mapping[str, Any], stream: bool) -> None:
        self.settings = settings
        self.start_ns = time.time_ns()
        self._t0 = time.perf_counter_ns()
        self.context = contextvars.copy_context()
        self.retries = [0]
        self.request_model = kwargs.get("model")
        self.stream = stream
        self.first_chunk_ns: int | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.saw_stop = False
        self.text: list[str] = []
        self.done = False
        attrs: dict[str, Any] = {
            sc.GEN_AI_PROVIDER_NAME: PROVIDER,
            sc.GEN_AI_OPERATION_NAME: OPERATION,
            sc.GEN_AI_REQUEST_MODEL: self.request_model,
            sc.GEN_AI_REQUEST_MAX_TOKENS: kwargs.get("max_tokens"),
            sc.GEN_AI_REQUEST_STREAM: stream,
        }
        for key, arg in ((sc.GEN_AI_REQUEST_TEMPERATURE, "temperature"), (sc.GEN_AI_REQUEST_TOP_P, "top_p"),
                         (sc.GEN_AI_REQUEST_TOP_K, "top_k")):
            value = kwargs.get(arg)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[key] = value
        stops = kwargs.get("stop_sequences")
        if isinstance(stops, (list, tuple)):
            attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(s) for s in stops]
        try:
            url = instance._client.base_url
            attrs[sc.SERVER_ADDRESS] = url.host
            if url.port is not None:
                attrs[sc.SERVER_PORT] = int(url.port)
        except Exception as exc:  # an SDK without _client.base_url: leave server.* out
            _log.debug("gitaudit: no server address on the anthropic client: %s", type(exc).__name__)
        system = kwargs.get("system")
        attrs.update(settings.content.prompt_attributes(system if isinstance(system, (str, list, tuple)) else None,
                                                        kwargs.get("messages") or []))
        self.attrs = attrs

    # --- observation ------------------------------------------------------------------
    def _merge_usage(self, usage: Any) -> None:
        if usage is None:
            return
        data = usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
        if self.usage is None:
            self.usage = {}
        for key, value in data.items():
            if value is not None:
                self.usage[key] = value

    def observe(self, event: Any) -> None:
        """Take what the audit needs from one raw stream event."""
        try:
            kind = _get(event, "type")
            if kind == "message_start":
                message = _get(event, "message")
                self.response_id = _get(message, "id")
                self.response_model = _get(message, "model")
                self._merge_usage(_get(message, "usage"))
            elif kind == "content_block_delta":
                if self.first_chunk_ns is None:
                    self.first_chunk_ns = time.perf_counter_ns()
                delta = _get(event, "delta")
                if self.settings.content.capture and _get(delta, "type") == "text_delta":
                    self.text.append(_get(delta, "text") or "")
            elif kind == "message_delta":
                delta = _get(event, "delta")
                self.stop_reason = _get(delta, "stop_reason") or self.stop_reason
                self._merge_usage(_get(event, "usage"))
            elif kind == "message_stop":
                self.saw_stop = True
        except Exception as exc:  # never break the caller's stream
            _log.debug("gitaudit: cannot read stream event (%s)", type(exc).__name__)

    def finish_message(self, message: Any) -> None:
        """Record a complete (non-streamed) Message and emit."""
        try:
            self.response_id = _get(message, "id")
            self.response_model = _get(message, "model")
            self.stop_reason = _get(message, "stop_reason")
            self._merge_usage(_get(message, "usage"))
            if self.settings.content.capture:
                self.text = [content_text(b for b in (_get(message, "content") or ())
                                          if _get(b, "type") == "text")]
        except Exception as exc:
            _log.debug("gitaudit: cannot read message (%s)", type(exc).__name__)
        self.emit(sc.Outcome.SUCCESS)

    def finish_stream(self) -> None:
        """The stream ended (exhausted or closed): success if ``message_stop`` was seen."""
        if self.saw_stop:
            self.emit(sc.Outcome.SUCCESS)
        else:
            self.emit(sc.Outcome.FAILURE, INCOMPLETE_STREAM)

    def fail(self, exc: BaseException) -> None:
        """The call failed with ``exc``."""
        error_type, status = error_type_of(exc)
        if status is not None:
            self.attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status
        self.emit(sc.Outcome.FAILURE, error_type)

    # --- emission -----------------------------------------------------------------------
    def emit(self, outcome: str, error_type: str | None = None) -> None:
        """Emit the event once, in the context the call started in; never raises."""
        if self.done:
            return
        self.done = True
        try:
            self.context.run(self._emit, outcome, error_type)
        except Exception as exc:
            _log.warning("gitaudit: could not emit claude.request (%s)", type(exc).__name__)

    def _emit(self, outcome: str, error_type: str | None) -> None:
        duration_ms = (time.perf_counter_ns() - self._t0) / 1e6
        attrs = dict(self.attrs)
        attrs[sc.GEN_AI_RESPONSE_ID] = self.response_id
        attrs[sc.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.stop_reason:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.stop_reason]
        if self.settings.retries_observable:
            attrs[sc.GEN_AI_REQUEST_RETRIES] = self.retries[0]
        if self.first_chunk_ns is not None:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (self.first_chunk_ns - self._t0) / 1e9
        cost = None
        tokens: dict[str, int] = {}
        if self.usage is not None:
            t = usage_tokens(self.usage)
            cache_creation = t["cache_write"] + t["cache_write_1h"]
            tokens = {
                "input_tokens": t["input"] + t["cache_read"] + cache_creation,
                "output_tokens": t["output"],
                "cache_read_input_tokens": t["cache_read"],
                "cache_creation_input_tokens": cache_creation,
            }
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = tokens["input_tokens"]
            attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = tokens["output_tokens"]
            attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = tokens["cache_read_input_tokens"]
            attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = tokens["cache_creation_input_tokens"]
            prices = self.settings.prices or default_table()
            cost = prices.cost_usd(self.response_model or self.request_model, self.usage)
            attrs[sc.GEN_AI_USAGE_COST_USD] = cost
        if self.text and self.settings.content.capture:
            attrs.update(self.settings.content.completion_attributes("".join(self.text)))
        model = self.response_model or self.request_model
        body = f"claude {OPERATION} {model}: {outcome}" + (f" ({error_type})" if error_type else "")
        uid = emit_event(sc.EventName.CLAUDE_REQUEST, attributes=attrs, body=body, outcome=outcome,
                         duration_ms=duration_ms, error_type=error_type, timestamp_ns=self.start_ns)
        record_claude_request(uid, model=model, cost_usd=cost, billed=self.usage is not None, **tokens)


# --- stream proxies -----------------------------------------------------------------------
class _ObservedStream(wrapt.ObjectProxy):
    """A sync ``Stream[RawMessageStreamEvent]`` whose events the audit sees."""

    def __init__(self, wrapped: Any, call: _Call) -> None:
        super().__init__(wrapped)
        self._self_call = call

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        try:
            event = self.__wrapped__.__next__()
        except StopIteration:
            self._self_call.finish_stream()
            raise
        except BaseException as exc:
            self._self_call.fail(exc)
            raise
        self._self_call.observe(event)
        return event

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.finish_stream()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _ObservedAsyncStream(wrapt.ObjectProxy):
    """An ``AsyncStream[RawMessageStreamEvent]`` whose events the audit sees."""

    def __init__(self, wrapped: Any, call: _Call) -> None:
        super().__init__(wrapped)
        self._self_call = call

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_call.finish_stream()
            raise
        except BaseException as exc:
            self._self_call.fail(exc)
            raise
        self._self_call.observe(event)
        return event

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_call.finish_stream()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def _materialize_messages(kwargs: dict[str, Any]) -> None:
    """Turn a one-shot ``messages`` iterable into a list, so hashing it does not consume it."""
    messages = kwargs.get("messages")
    if messages is not None and not isinstance(messages, (list, tuple)):
        kwargs["messages"] = list(messages)


def _begin(settings: _Settings, instance: Any, kwargs: dict[str, Any], stream: bool) -> _Call | None:
    try:
        _materialize_messages(kwargs)
        return _Call(settings, instance, kwargs, stream)
    except Exception as exc:
        _log.warning("gitaudit: cannot audit this Claude call (%s)", type(exc).__name__)
        return None


def _is_stream(result: Any, async_: bool) -> bool:
    import anthropic

    return isinstance(result, anthropic.AsyncStream if async_ else anthropic.Stream)


def _handle_result(call: _Call, result: Any, async_: bool) -> Any:
    try:
        if _is_stream(result, async_):
            return (_ObservedAsyncStream if async_ else _ObservedStream)(result, call)
        call.finish_message(result)
    except Exception as exc:
        _log.warning("gitaudit: cannot audit this Claude result (%s)", type(exc).__name__)
    return result


def _create_wrapper(settings: _Settings) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        call = _begin(settings, instance, kwargs, kwargs.get("stream") is True)
        if call is None:
            return wrapped(*args, **kwargs)
        token = _RETRIES.set(call.retries)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _RETRIES.reset(token)
        return _handle_result(call, result, async_=False)

    return wrapper


def _async_create_wrapper(settings: _Settings) -> Any:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        call = _begin(settings, instance, kwargs, kwargs.get("stream") is True)
        if call is None:
            return await wrapped(*args, **kwargs)
        token = _RETRIES.set(call.retries)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _RETRIES.reset(token)
        return _handle_result(call, result, async_=True)

    return wrapper


def _stream_wrapper(settings: _Settings) -> Any:
    """``Messages.stream``: observe the raw stream the manager opens in ``__enter__``."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        _materialize_messages(kwargs)
        call_kwargs = dict(kwargs)
        manager = wrapped(*args, **kwargs)
        original = getattr(manager, _SYNC_MANAGER_ATTR, None)
        if not callable(original):
            _log.warning("gitaudit: unknown MessageStreamManager layout; stream not audited")
            return manager

        def api_request() -> Any:
            call = _begin(settings, instance, call_kwargs, True)
            if call is None:
                return original()
            token = _RETRIES.set(call.retries)
            try:
                raw = original()
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                _RETRIES.reset(token)
            return _ObservedStream(raw, call)

        setattr(manager, _SYNC_MANAGER_ATTR, api_request)
        return manager

    return wrapper


def _async_stream_wrapper(settings: _Settings) -> Any:
    """``AsyncMessages.stream``: the manager holds an un-awaited request coroutine."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        _materialize_messages(kwargs)
        call_kwargs = dict(kwargs)
        manager = wrapped(*args, **kwargs)
        original = getattr(manager, _ASYNC_MANAGER_ATTR, None)
        if original is None or not hasattr(original, "__await__"):
            _log.warning("gitaudit: unknown AsyncMessageStreamManager layout; stream not audited")
            return manager

        async def api_request() -> Any:
            call = _begin(settings, instance, call_kwargs, True)
            if call is None:
                return await original
            token = _RETRIES.set(call.retries)
            try:
                raw = await original
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                _RETRIES.reset(token)
            return _ObservedAsyncStream(raw, call)

        setattr(manager, _ASYNC_MANAGER_ATTR, api_request())
        return manager

    return wrapper


def _count_retry(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    counter = _RETRIES.get()
    if counter is not None:
        counter[0] += 1
    return wrapped(*args, **kwargs)


def _resolve_prices(price_table: Any) -> PriceTable | None:
    if price_table is None or isinstance(price_table, PriceTable):
        return price_table
    if isinstance(price_table, Mapping):
        return PriceTable.load(overrides=price_table)
    return PriceTable.load(path=price_table)


class AnthropicInstrumentor(BaseInstrumentor):
    """Emit a ``claude.request`` audit event for every anthropic Messages call.

    ``instrument(**kwargs)`` accepts ``capture_content: bool``,
    ``max_content_bytes: int``, ``price_table: PriceTable | Mapping | path``,
    ``sanitize: Callable[[str], str]`` (see the module docstring).

    Raises (from ``instrument``):
        ValueError: a malformed price table or content size.
    """

    _PATCHES = (
        ("create", False, _create_wrapper),
        ("create", True, _async_create_wrapper),
        ("stream", False, _stream_wrapper),
        ("stream", True, _async_stream_wrapper),
    )

    def instrumentation_dependencies(self) -> Collection[str]:
        """The instrumented library and version range."""
        return ("anthropic >= 0.40",)

    def _instrument(self, **kwargs: Any) -> None:
        from anthropic import _base_client
        from anthropic.resources.messages import AsyncMessages, Messages

        settings = _Settings(
            ContentPolicy.resolve(kwargs.get("capture_content"), kwargs.get("max_content_bytes"),
                                  kwargs.get("sanitize")),
            _resolve_prices(kwargs.get("price_table")),
        )
        for method, async_, factory in self._PATCHES:
            cls = AsyncMessages if async_ else Messages
            wrap_function_wrapper(cls.__module__, f"{cls.__name__}.{method}", factory(settings))
        self._retry_patched = []
        for name in ("SyncAPIClient", "AsyncAPIClient"):
            cls = getattr(_base_client, name, None)
            if cls is not None and hasattr(cls, "_sleep_for_retry"):
                wrap_function_wrapper(_base_client.__name__, f"{name}._sleep_for_retry", _count_retry)
                self._retry_patched.append(cls)
        settings.retries_observable = len(self._retry_patched) == 2

    def _uninstrument(self, **kwargs: Any) -> None:
        from anthropic.resources.messages import AsyncMessages, Messages

        for method, async_, _ in self._PATCHES:
            unwrap(AsyncMessages if async_ else Messages, method)
        for cls in getattr(self, "_retry_patched", ()):
            unwrap(cls, "_sleep_for_retry")
        self._retry_patched = []


__all__ = ["INCOMPLETE_STREAM", "AnthropicInstrumentor", "error_type_of"]
