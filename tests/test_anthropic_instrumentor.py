"""The anthropic instrumentor: the real anthropic client against the local Messages API stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
import wrapt
from opentelemetry._logs import SeverityNumber

from gitaudit.instrumentation import ensure_trace
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.anthropic_instrumentor import AnthropicInstrumentor
from gitaudit.instrumentation.claude_standin import CannedResponse, ClaudeStandIn, merge_conflict_markers
from gitaudit.instrumentation.genai_content import ContentPolicy, prompt_text, truncate_utf8
from gitaudit.instrumentation.genai_pricing import PriceTable, cost_usd, normalize_model_id

MODEL = "claude-haiku-4-5-20251001"  # priced as claude-haiku-4-5: $1 in, $5 out, $0.10 cache read, $1.25 write
MESSAGES = [{"role": "user", "content": "Merge these two versions of app.py please."}]
#: 100 input, 1000 cache read, 200 cache write, 50 output tokens on claude-haiku-4-5.
USAGE = dict(input_tokens=100, cache_read_input_tokens=1000, cache_creation_input_tokens=200, output_tokens=50)
COST = 0.0007  # (100*1 + 1000*0.10 + 200*1.25 + 50*5) / 1e6
FAKE_KEY = "sk-ant-api03-" + "Zq3vR8mK1pL5sT9wX2yB4nC6dF7gH0jA" * 3 + "-AbCdEfAA"


@pytest.fixture
def standin() -> Iterator[ClaudeStandIn]:
    """A stand-in Messages API on a free loopback port."""
    with ClaudeStandIn() as server:
        yield server


@pytest.fixture
def instrument(audit_events: Any) -> Iterator[Callable[..., AnthropicInstrumentor]]:
    """Instrument with the given options (setUp); always uninstrument (tearDown)."""
    inst = AnthropicInstrumentor()

    def _instrument(**kwargs: Any) -> AnthropicInstrumentor:
        inst.instrument(**kwargs)
        return inst

    yield _instrument
    inst.uninstrument()


def _client(server: ClaudeStandIn, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=server.url, api_key="test-key-not-secret", **kwargs)


def _aclient(server: ClaudeStandIn, **kwargs: Any) -> anthropic.AsyncAnthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=server.url, api_key="test-key-not-secret", **kwargs)


def _expected_sha256(messages: Any, system: Any = None) -> str:
    canonical = json.dumps({"messages": messages, "system": system}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _assert_success_attrs(attrs: dict, server: ClaudeStandIn, *, stream: bool, response_id: str) -> None:
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == MODEL
    assert attrs[sc.GEN_AI_RESPONSE_ID] == response_id
    assert tuple(attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("end_turn",)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1300
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 50
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    assert attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 200
    assert attrs[sc.GEN_AI_USAGE_COST_USD] == COST
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 256
    assert attrs[sc.GEN_AI_REQUEST_STREAM] is stream
    assert attrs[sc.GEN_AI_REQUEST_RETRIES] == 0
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[sc.SERVER_PORT] == int(server.url.rsplit(":", 1)[1])
    assert attrs[sc.GEN_AI_PROMPT_SHA256] == _expected_sha256(MESSAGES)
    assert attrs[sc.AUDIT_OUTCOME] == "success"
    assert sc.ERROR_TYPE not in attrs
    assert attrs[sc.AUDIT_DURATION_MS] > 0
    if stream:
        ttfc = attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
        assert 0 < ttfc <= attrs[sc.AUDIT_DURATION_MS] / 1000
    else:
        assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs
    assert sc.GEN_AI_PROMPT_TEXT not in attrs and sc.GEN_AI_COMPLETION_TEXT not in attrs


def _canned(**kw: Any) -> CannedResponse:
    return CannedResponse(text=kw.pop("text", "merged file content, streamed in chunks"),
                          message_id=kw.pop("message_id", "msg_fixed"), **USAGE, **kw)


def test_instrumentation_dependencies() -> None:
    """The instrumentor declares the anthropic versions it supports."""
    assert tuple(AnthropicInstrumentor().instrumentation_dependencies()) == ("anthropic >= 0.40",)


def test_sync_create_records_every_attribute(standin, instrument, audit_events) -> None:
    """A plain create() gives one claude.request with every GenAI attribute, cost and the caller's trace."""
    instrument()
    standin.enqueue(_canned())
    with ensure_trace("caller") as span_ctx:
        message = _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert message.usage.cache_read_input_tokens == 1000
    record = audit_events.one(sc.EventName.CLAUDE_REQUEST)
    _assert_success_attrs(dict(record.log_record.attributes), standin, stream=False, response_id="msg_fixed")
    assert record.log_record.trace_id == span_ctx.trace_id
    assert record.log_record.severity_number == SeverityNumber.INFO


def test_create_stream_true_observes_events(standin, instrument, audit_events) -> None:
    """create(stream=True): the event is emitted once the stream is exhausted, with time to first chunk."""
    instrument()
    standin.enqueue(_canned(chunk_size=5))
    stream = _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    assert audit_events.named(sc.EventName.CLAUDE_REQUEST) == []  # not before the stream is read
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    _assert_success_attrs(audit_events.attrs(sc.EventName.CLAUDE_REQUEST), standin, stream=True,
                          response_id="msg_fixed")


def test_messages_stream_manager(standin, instrument, audit_events) -> None:
    """messages.stream(): get_final_text() through the MessageStreamManager is observed in full."""
    instrument()
    standin.enqueue(_canned())
    with _client(standin).messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "merged file content, streamed in chunks"
    _assert_success_attrs(audit_events.attrs(sc.EventName.CLAUDE_REQUEST), standin, stream=True,
                          response_id="msg_fixed")


def test_async_create_stream_and_stream_manager(standin, instrument, audit_events) -> None:
    """AsyncMessages.create (plain and stream=True) and .stream() each emit one complete event."""
    instrument()
    standin.enqueue(_canned(message_id="msg_a1"), _canned(message_id="msg_a2"), _canned(message_id="msg_a3"))

    async def run() -> None:
        client = _aclient(standin)
        await client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
        stream = await client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
        async for _ in stream:
            pass
        async with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as managed:
            assert (await managed.get_final_message()).id == "msg_a3"

    asyncio.run(run())
    records = audit_events.named(sc.EventName.CLAUDE_REQUEST)
    assert len(records) == 3
    for record, (rid, stream) in zip(records, [("msg_a1", False), ("msg_a2", True), ("msg_a3", True)]):
        _assert_success_attrs(dict(record.log_record.attributes), standin, stream=stream, response_id=rid)


def test_overloaded_529_without_retries(standin, instrument, audit_events) -> None:
    """A 529 is a failure event with error.type overloaded_error, the status, and no tokens or cost."""
    instrument()
    standin.enqueue(CannedResponse.overloaded())
    with pytest.raises(anthropic.APIStatusError):
        _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    record = audit_events.one(sc.EventName.CLAUDE_REQUEST)
    attrs = dict(record.log_record.attributes)
    assert attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "overloaded_error"
    assert attrs[sc.HTTP_RESPONSE_STATUS_CODE] == 529
    assert attrs[sc.GEN_AI_REQUEST_RETRIES] == 0
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[sc.AUDIT_DURATION_MS] > 0
    for key in (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_COST_USD, sc.GEN_AI_RESPONSE_ID):
        assert key not in attrs
    assert record.log_record.severity_number == SeverityNumber.ERROR


def test_529_retried_then_success_is_one_event_with_retry_count(standin, instrument, audit_events) -> None:
    """Retries inside one logical call give one event with the final outcome and gen_ai.request.retries."""
    instrument()
    standin.enqueue(CannedResponse.overloaded(), CannedResponse.overloaded(), _canned())
    _client(standin, max_retries=2).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert len(standin.requests) == 3
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.GEN_AI_REQUEST_RETRIES] == 2
    assert attrs[sc.GEN_AI_USAGE_COST_USD] == COST


def test_529_retries_exhausted_is_one_failure_event(standin, instrument, audit_events) -> None:
    """When every attempt is overloaded, one failure event records the retries made."""
    instrument()
    standin.enqueue(*[CannedResponse.overloaded()] * 3)
    with pytest.raises(anthropic.APIStatusError):
        _client(standin, max_retries=2).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert (attrs[sc.ERROR_TYPE], attrs[sc.GEN_AI_REQUEST_RETRIES]) == ("overloaded_error", 2)


@pytest.mark.parametrize(("canned", "error_type", "status"), [
    (CannedResponse.rate_limited(), "rate_limit_error", 429),
    (CannedResponse.error(500, "api_error", "Internal server error"), "api_error", 500),
    (CannedResponse.error(400, "invalid_request_error", "max_tokens too large"), "invalid_request_error", 400),
])
def test_api_errors_map_to_anthropic_error_codes(standin, instrument, audit_events, canned, error_type,
                                                 status) -> None:
    """error.type is the Anthropic error code of the response body; the HTTP status is kept too."""
    instrument()
    standin.enqueue(canned)
    with pytest.raises(anthropic.APIStatusError):
        _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert (attrs[sc.ERROR_TYPE], attrs[sc.HTTP_RESPONSE_STATUS_CODE]) == (error_type, status)


def test_timeout_is_error_type_timeout(standin, instrument, audit_events) -> None:
    """A client timeout is recorded as error.type=timeout."""
    instrument()
    standin.enqueue(_canned(delay_ms=600))
    with pytest.raises(anthropic.APITimeoutError):
        _client(standin, timeout=0.1).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.ERROR_TYPE] == "timeout" and attrs[sc.AUDIT_OUTCOME] == "failure"


def test_error_event_inside_stream(standin, instrument, audit_events) -> None:
    """An SSE error event part-way through a stream fails the call with its error code."""
    instrument()
    standin.enqueue(_canned(stream_error_after=1, error_type="overloaded_error"))
    stream = _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    with pytest.raises(anthropic.APIStatusError):
        for _ in stream:
            pass
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.ERROR_TYPE] == "overloaded_error"
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "msg_fixed"  # message_start was seen before the error


def test_stream_closed_early_is_incomplete(standin, instrument, audit_events) -> None:
    """A stream closed before message_stop is a failure with error.type incomplete_stream, emitted once."""
    instrument()
    standin.enqueue(_canned())
    stream = _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert (attrs[sc.AUDIT_OUTCOME], attrs[sc.ERROR_TYPE]) == ("failure", "incomplete_stream")


def test_unknown_model_has_no_cost(standin, instrument, audit_events) -> None:
    """An unpriced model records its tokens but no cost attribute (absent, never 0)."""
    instrument()
    standin.enqueue(_canned())
    _client(standin).messages.create(model="claude-nonexistent-9", max_tokens=256, messages=MESSAGES)
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1300
    assert sc.GEN_AI_USAGE_COST_USD not in attrs


def test_price_table_from_env_file(standin, instrument, audit_events, tmp_path, monkeypatch) -> None:
    """GITAUDIT_GENAI_PRICES points at a YAML file whose rates replace the defaults."""
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  claude-haiku-4-5: {input: 1, output: 2, cache_read: 0.5, cache_write: 4}\n")
    monkeypatch.setenv("GITAUDIT_GENAI_PRICES", str(prices))
    instrument()
    standin.enqueue(_canned())
    _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    # (100*1 + 50*2 + 1000*0.5 + 200*4) / 1e6
    assert audit_events.attrs(sc.EventName.CLAUDE_REQUEST)[sc.GEN_AI_USAGE_COST_USD] == 0.0015


def test_content_off_by_default(standin, instrument, audit_events) -> None:
    """Without opt-in no prompt or completion text appears anywhere in the record, only the SHA-256."""
    instrument()
    standin.enqueue(_canned(text="COMPLETION-SENTINEL-7731"))
    msgs = [{"role": "user", "content": f"PROMPT-SENTINEL-4242 {FAKE_KEY}"}]
    _client(standin).messages.create(model=MODEL, max_tokens=256, messages=msgs, system="SYSTEM-SENTINEL")
    record = audit_events.one(sc.EventName.CLAUDE_REQUEST).log_record
    everything = repr(record.body) + repr(dict(record.attributes))
    for needle in ("PROMPT-SENTINEL", "COMPLETION-SENTINEL", "SYSTEM-SENTINEL", FAKE_KEY):
        assert needle not in everything
    assert record.attributes[sc.GEN_AI_PROMPT_SHA256] == _expected_sha256(msgs, "SYSTEM-SENTINEL")


def test_content_opt_in_by_env_is_sanitized(standin, instrument, audit_events, monkeypatch) -> None:
    """GITAUDIT_CAPTURE_CONTENT=true records prompt and completion after the gitaudit sanitizer."""
    monkeypatch.setenv("GITAUDIT_CAPTURE_CONTENT", "true")
    instrument()
    standin.enqueue(_canned(text="Here is the merge."))
    msgs = [{"role": "user", "content": f"Resolve this; my key is {FAKE_KEY} by mistake."}]
    _client(standin).messages.create(model=MODEL, max_tokens=256, messages=msgs)
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.GEN_AI_COMPLETION_TEXT] == "Here is the merge."
    prompt = attrs[sc.GEN_AI_PROMPT_TEXT]
    assert prompt.startswith("user: Resolve this; my key is ")
    assert FAKE_KEY not in prompt and "sk-ant-api03-Zq3v" not in prompt
    assert "[REDACTED:" in prompt


def test_content_opt_in_by_argument_with_custom_sanitizer_and_byte_limit(standin, instrument,
                                                                         audit_events) -> None:
    """capture_content=True with a sanitizer and a byte limit: sanitized first, then cut on a UTF-8 boundary."""
    instrument(capture_content=True, max_content_bytes=40,
               sanitize=lambda text: text.replace(FAKE_KEY, "[REDACTED:test]"))
    standin.enqueue(_canned(text="é" * 30))  # 60 bytes
    msgs = [{"role": "user", "content": f"{FAKE_KEY} é"}]
    with _client(standin).messages.stream(model=MODEL, max_tokens=256, messages=msgs) as stream:
        stream.until_done()
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.GEN_AI_PROMPT_TEXT] == "user: [REDACTED:test] é"
    assert attrs[sc.GEN_AI_COMPLETION_TEXT] == "é" * 20
    assert attrs[sc.GEN_AI_CONTENT_TRUNCATED] is True


def test_uninstrument_stops_events(standin, audit_events) -> None:
    """After uninstrument() calls are no longer recorded and create is the original function again."""
    inst = AnthropicInstrumentor()
    inst.instrument()
    inst.uninstrument()
    for cls in (anthropic.resources.messages.Messages, anthropic.resources.messages.AsyncMessages):
        assert not isinstance(cls.__dict__["create"], wrapt.FunctionWrapper)
        assert not isinstance(cls.__dict__["stream"], wrapt.FunctionWrapper)
    _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert audit_events.named(sc.EventName.CLAUDE_REQUEST) == []


def test_generator_messages_are_not_consumed(standin, instrument, audit_events) -> None:
    """Messages passed as a one-shot iterator still reach the API after being fingerprinted."""
    instrument()
    client = _client(standin)
    client.messages.create(model=MODEL, max_tokens=256, messages=(m for m in MESSAGES))
    with client.messages.stream(model=MODEL, max_tokens=256, messages=(m for m in MESSAGES)) as stream:
        stream.until_done()
    assert [r.body["messages"] for r in standin.requests] == [MESSAGES, MESSAGES]
    records = audit_events.named(sc.EventName.CLAUDE_REQUEST)
    assert [r.log_record.attributes[sc.GEN_AI_PROMPT_SHA256] for r in records] == [_expected_sha256(MESSAGES)] * 2


def test_audit_failure_never_breaks_the_call(standin, instrument, audit_events, monkeypatch) -> None:
    """When emitting the event fails, the Claude call still returns its message."""
    from gitaudit.instrumentation import anthropic_instrumentor

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(anthropic_instrumentor, "emit_event", broken)
    instrument()
    standin.enqueue(_canned())
    message = _client(standin).messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert message.id == "msg_fixed"


def test_tool_blocks_and_sdk_models_in_prompts(standin, instrument, audit_events) -> None:
    """Tool blocks render as placeholders and SDK model objects hash like their dict form."""
    instrument(capture_content=True, sanitize=lambda t: t)
    msgs = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [anthropic.types.ToolUseBlock(id="tu_1", name="get_weather", input={},
                                                                       type="tool_use")]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"}]},
    ]
    _client(standin).messages.create(model=MODEL, max_tokens=256, messages=msgs)
    attrs = audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert attrs[sc.GEN_AI_PROMPT_TEXT] == "user: weather?\n\nassistant: [tool_use get_weather]\n\nuser: [tool_result] sunny"
    as_dicts = [msgs[0], {"role": "assistant", "content": [{"id": "tu_1", "input": {}, "name": "get_weather",
                                                            "type": "tool_use"}]}, msgs[2]]
    assert attrs[sc.GEN_AI_PROMPT_SHA256] == _expected_sha256(as_dicts)


# --- price table and content helpers ----------------------------------------------------------

@pytest.mark.parametrize(("model", "family"), [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("anthropic.claude-opus-4-20250514-v1:0", "claude-opus-4"),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
    ("claude-opus-4-1@20250805", "claude-opus-4-1"),
    ("claude-sonnet-5-5[1m]", "claude-sonnet-5-5"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
])
def test_model_ids_map_to_family(model, family) -> None:
    """Dated, Bedrock, Vertex, [1m] and -latest ids normalize to the family id of the table."""
    assert normalize_model_id(model) == family
    assert PriceTable.default().lookup(model).model == family


def test_cost_rates_one_hour_cache_and_long_prompt_tier() -> None:
    """1-hour cache writes use their own rate; a prompt above the threshold bills every token at the long rate."""
    usage = {"input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 300,
             "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}}
    # haiku-4-5: 1000*1 + 100*5 + 100*1.25 + 200*2 = 2025 -> /1e6
    assert cost_usd("claude-haiku-4-5", usage) == 0.002025
    long_usage = {"input_tokens": 150_000, "output_tokens": 1000}
    # haiku-5-5 above 100k prompt tokens: 150000*0.50 + 1000*2.50 = 77500 -> /1e6
    assert cost_usd("claude-haiku-5-5", long_usage) == 0.0775
    assert cost_usd("claude-haiku-5-5", {"input_tokens": 1000, "output_tokens": 1000}) == 0.0006


def test_unknown_model_cost_is_none_and_bad_tables_are_refused(tmp_path) -> None:
    """cost_usd is None (not 0) for unknown models; a malformed table names the bad entry."""
    assert cost_usd("gpt-4o", {"input_tokens": 10, "output_tokens": 10}) is None
    assert cost_usd(None, {"input_tokens": 10}) is None
    with pytest.raises(ValueError, match="claude-x: missing 'output'"):
        PriceTable({"models": {"claude-x": {"input": 1, "cache_read": 0, "cache_write": 0}}})
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid YAML/JSON"):
        PriceTable.load(path=bad)


def test_truncate_utf8_never_splits_a_character() -> None:
    """Truncation keeps at most N bytes and drops a partial multi-byte character."""
    assert truncate_utf8("aé€𝄞", 4) == ("aé", True)
    assert truncate_utf8("aé€𝄞", 10) == ("aé€𝄞", False)
    text, cut = truncate_utf8("𝄞" * 5, 7)
    assert (text, cut) == ("𝄞", True) and len(text.encode()) <= 7


def test_content_policy_renders_only_with_capture_and_a_sanitizer(monkeypatch) -> None:
    """render() sanitizes when capturing, records nothing when off, and fails closed without a sanitizer."""
    from gitaudit.instrumentation import genai_content

    assert ContentPolicy(capture=True, max_bytes=100, sanitize=str.upper).render("abc") == ("ABC", False)
    assert ContentPolicy(capture=False, sanitize=str.upper).render("abc") == (None, False)
    monkeypatch.setattr(genai_content, "default_sanitize", lambda: None)
    assert ContentPolicy(capture=True).render("abc") == (None, False)
    assert prompt_text("sys", [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                            {"type": "image", "source": {}}]}]) == \
        "system: sys\n\nuser: hi\n[image]"


def test_standin_merges_both_sides() -> None:
    """The stand-in's deterministic resolution keeps ours then theirs and drops every marker."""
    conflicted = "a\n<<<<<<< HEAD\nours\n||||||| base\nold\n=======\ntheirs\n>>>>>>> feature\nz\n"
    assert merge_conflict_markers(conflicted) == "a\nours\ntheirs\nz\n"
    same = "<<<<<<< HEAD\nx\n=======\nx\n>>>>>>> b\n"
    assert merge_conflict_markers(same) == "x\n"
