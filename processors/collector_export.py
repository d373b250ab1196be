"""Render the sanitizer rules as OpenTelemetry Collector (contrib) processor config.

:func:`render_collector_processors` returns a mapping to place under
``processors:`` of an otelcol-contrib config:

``transform/gitaudit_sanitize``
    OTTL log statements, per pattern rule and scope: ``replace_all_patterns``
    on attribute values (``"value"``) and keys (``"key"``), and
    ``replace_pattern`` on a string body. A rule with a ``secret`` part keeps
    its prefix and suffix (``${pre}[REDACTED:<rule>]${post}``), like the Python
    sanitizer.
``redaction/gitaudit_sanitize``
    the ``redaction`` processor: ``blocked_key_patterns`` from the key_name
    rules (values of credential-named keys masked whole) and
    ``blocked_values`` from every pattern rule.

Patterns carry over unchanged because Go's regexp is RE2. Differences from the
in-process sanitizer, by necessity: OTTL cannot compute a keyed HMAC, so
markers have no fingerprint (``[REDACTED:<rule>]``, which the Python sanitizer
treats as a marker and leaves alone); validators (Luhn, entropy, JWT header,
...) cannot run, so such rules over-mask in the collector (safe, never less);
the personal-data policy is not rendered. ``$`` is doubled (``$$``) because
the collector expands ``$`` in config values.
"""

from __future__ import annotations

from typing import Any

from .ruleset import KIND_KEY_NAME, KIND_PATTERN, Rule, RuleSet

__all__ = ["TRANSFORM_NAME", "REDACTION_NAME", "collector_pattern", "render_collector_processors"]

TRANSFORM_NAME = "transform/gitaudit_sanitize"
REDACTION_NAME = "redaction/gitaudit_sanitize"


def collector_pattern(rule: Rule) -> tuple[str, str]:
    """(Go/RE2 regex, Go replacement template) for one pattern rule; ``$`` not yet escaped."""
    flags = f"(?{rule.flags})" if rule.flags else ""
    marker = f"[REDACTED:{rule.id}]"
    if rule.secret:
        regex = f"{flags}(?P<pre>{rule.prefix})(?P<secret>{rule.secret})(?P<post>{rule.suffix})"
        return regex, "${pre}" + marker + "${post}"
    return rule.source, marker


def _ottl_string(text: str) -> str:
    """An OTTL string literal: backslashes and quotes escaped, ``$`` doubled for the collector."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def render_collector_processors(rules: RuleSet) -> dict[str, Any]:
    """Collector ``processors:`` entries equivalent to ``rules`` (see module docstring).

    Returns ``{"transform/gitaudit_sanitize": {...}, "redaction/gitaudit_sanitize": {...}}``,
    plain dicts/lists/strings ready for ``yaml.safe_dump``.
    """
    statements: list[str] = []
    blocked_values: list[str] = []
    blocked_keys: list[str] = []
    for rule in rules.rules:
        if rule.kind == KIND_KEY_NAME:
            blocked_keys.append(rule.source.replace("$", "$$"))
            continue
        if rule.kind != KIND_PATTERN:  # pragma: no cover - only two kinds exist
            continue
        regex, replacement = collector_pattern(rule)
        rx, rp = _ottl_string(regex), _ottl_string(replacement)
        if "values" in rule.scopes:
            statements.append(f"replace_all_patterns(log.attributes, \"value\", {rx}, {rp})")
        if "keys" in rule.scopes:
            statements.append(f"replace_all_patterns(log.attributes, \"key\", {rx}, {rp})")
        if "body" in rule.scopes:
            statements.append(f"replace_pattern(log.body, {rx}, {rp}) where IsString(log.body)")
        blocked_values.append(rule.source.replace("$", "$$"))
    return {
        TRANSFORM_NAME: {
            "error_mode": "ignore",
            "log_statements": [{"statements": statements}],
        },
        REDACTION_NAME: {
            "allow_all_keys": True,
            "blocked_key_patterns": blocked_keys,
            "blocked_values": blocked_values,
            "summary": "info",
        },
    }
