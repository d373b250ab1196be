"""What of a Claude prompt and completion goes on the audit record.

By default: nothing of the text. Every ``claude.request`` event carries only
``gen_ai.prompt.sha256``, the SHA-256 (hex) of the prompt's canonical JSON
(``{"messages": ..., "system": ...}`` with sorted keys, compact separators,
UTF-8), so identical prompts can be grouped without being stored.

Opt-in capture (argument > ``GITAUDIT_CAPTURE_CONTENT`` > off) adds
``gen_ai.prompt.text`` and ``gen_ai.completion.text``: the text rendered as
``role: text`` paragraphs, passed through the gitaudit sanitizer
(``gitaudit.processors.Sanitizer.default().sanitize_text``: secrets become
``[REDACTED:<rule>:<fingerprint>]``), then truncated to at most ``max_bytes``
UTF-8 bytes on a character boundary (``gen_ai.content.truncated`` = true when
cut). Sanitizing comes first, so a secret cut in half by truncation cannot slip
past the rules. When the sanitizer cannot be loaded, capture fails closed: no
text is recorded and a warning is logged once.

Environment variables:

======================================  =========================================
``GITAUDIT_CAPTURE_CONTENT``            ``true``/``1``/``yes``/``on`` to capture
``GITAUDIT_CAPTURE_CONTENT_MAX_BYTES``  size limit per text in bytes (default 4096)
======================================  =========================================
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import semconv as sc

_log = logging.getLogger(__name__)

ENV_CAPTURE_CONTENT = "GITAUDIT_CAPTURE_CONTENT"
ENV_CAPTURE_CONTENT_MAX_BYTES = "GITAUDIT_CAPTURE_CONTENT_MAX_BYTES"
DEFAULT_MAX_BYTES = 4096

_TRUE = frozenset({"1", "true", "yes", "on"})


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes without splitting a character.

    Returns:
        ``(text, truncated)``.
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    # A cut inside a multi-byte sequence leaves an incomplete tail; "ignore"
    # drops exactly that tail (the rest is valid UTF-8 we just encoded).
    return data[: max(0, max_bytes)].decode("utf-8", "ignore"), True


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, str):
        return list(value)
    return str(value)


def canonical_prompt(system: Any, messages: Any) -> str:
    """The prompt as canonical JSON: sorted keys, compact, non-ASCII kept."""
    return json.dumps({"messages": messages, "system": system}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=_json_default)


def prompt_sha256(system: Any, messages: Any) -> str:
    """SHA-256 (lower-case hex) of :func:`canonical_prompt` encoded as UTF-8."""
    return hashlib.sha256(canonical_prompt(system, messages).encode("utf-8")).hexdigest()


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def block_text(block: Any) -> str:
    """Text of one content block: text as is, other kinds as a ``[kind]`` placeholder."""
    if isinstance(block, str):
        return block
    kind = _get(block, "type")
    if kind == "text":
        return str(_get(block, "text") or "")
    if kind == "tool_use":
        return f"[tool_use {_get(block, 'name')}]"
    if kind == "tool_result":
        content = _get(block, "content")
        inner = content if isinstance(content, str) else "\n".join(block_text(b) for b in content or ())
        return f"[tool_result] {inner}".rstrip()
    if kind in ("thinking", "redacted_thinking"):
        return f"[{kind}]"
    return f"[{kind or 'block'}]"


def content_text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(block_text(b) for b in content)


def prompt_text(system: Any, messages: Iterable[Any]) -> str:
    """The prompt as ``role: text`` paragraphs, the system prompt first."""
    parts = []
    if system:
        parts.append(f"system: {content_text(system)}")
    for message in messages or ():
        parts.append(f"{_get(message, 'role') or 'user'}: {content_text(_get(message, 'content'))}")
    return "\n\n".join(parts)


_sanitize_fn: Callable[[str], str] | None = None
_sanitizer_warned = False


def default_sanitize() -> Callable[[str], str] | None:
    """``Sanitizer.default().sanitize_text`` of :mod:`gitaudit.processors`, or None if unavailable."""
    global _sanitize_fn, _sanitizer_warned
    if _sanitize_fn is not None:
        return _sanitize_fn
    try:
        from ..processors import Sanitizer

        _sanitize_fn = Sanitizer.default().sanitize_text
    except Exception as exc:  # missing, placeholder or failing to load: fail closed
        if not _sanitizer_warned:
            _log.warning("gitaudit: sanitizer unavailable (%s); Claude content will not be captured",
                         type(exc).__name__)
            _sanitizer_warned = True
        return None
    return _sanitize_fn


@dataclass(frozen=True)
class ContentPolicy:
    """Whether and how prompt/completion text is recorded.

    Attributes:
        capture: record sanitized text (default off).
        max_bytes: UTF-8 byte limit of each recorded text.
        sanitize: ``str -> str`` redaction; ``None`` = the gitaudit sanitizer.
    """

    capture: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    sanitize: Callable[[str], str] | None = None

    @classmethod
    def resolve(cls, capture: bool | None = None, max_bytes: int | None = None,
                sanitize: Callable[[str], str] | None = None) -> ContentPolicy:
        """Arguments, else ``GITAUDIT_CAPTURE_CONTENT`` / ``..._MAX_BYTES``, else defaults.

        Raises:
            ValueError: ``max_bytes`` (or its env var) is not a positive integer.
        """
        if capture is None:
            capture = os.environ.get(ENV_CAPTURE_CONTENT, "").strip().lower() in _TRUE
        if max_bytes is None:
            raw = os.environ.get(ENV_CAPTURE_CONTENT_MAX_BYTES, "").strip()
            try:
                max_bytes = int(raw) if raw else DEFAULT_MAX_BYTES
            except ValueError:
                raise ValueError(f"{ENV_CAPTURE_CONTENT_MAX_BYTES} must be an integer, got {raw!r}") from None
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        return cls(bool(capture), int(max_bytes), sanitize)

    def render(self, text: str) -> tuple[str | None, bool]:
        """Sanitize then truncate ``text``; ``(None, False)`` when not capturing or no sanitizer."""
        if not self.capture:
            return None, False
        sanitize = self.sanitize or default_sanitize()
        if sanitize is None:
            return None, False
        return truncate_utf8(sanitize(text), self.max_bytes)

    def prompt_attributes(self, system: Any, messages: Any) -> dict[str, Any]:
        """``gen_ai.prompt.sha256`` always; ``gen_ai.prompt.text`` when capturing."""
        attrs: dict[str, Any] = {sc.GEN_AI_PROMPT_SHA256: prompt_sha256(system, messages)}
        text, truncated = self.render(prompt_text(system, messages))
        if text is not None:
            attrs[sc.GEN_AI_PROMPT_TEXT] = text
            if truncated:
                attrs[sc.GEN_AI_CONTENT_TRUNCATED] = True
        return attrs

    def completion_attributes(self, completion: str | None) -> dict[str, Any]:
        """``gen_ai.completion.text`` when capturing (and the truncation flag)."""
        if completion is None:
            return {}
        text, truncated = self.render(completion)
        if text is None:
            return {}
        attrs: dict[str, Any] = {sc.GEN_AI_COMPLETION_TEXT: text}
        if truncated:
            attrs[sc.GEN_AI_CONTENT_TRUNCATED] = True
        return attrs


__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENV_CAPTURE_CONTENT",
    "ENV_CAPTURE_CONTENT_MAX_BYTES",
    "ContentPolicy",
    "canonical_prompt",
    "content_text",
    "default_sanitize",
    "prompt_sha256",
    "prompt_text",
    "truncate_utf8",
]
