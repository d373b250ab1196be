"""Collector config generated from the rules: every rule present, patterns valid RE2, same masking."""

from __future__ import annotations

import re2
import yaml

from test_sanitizer_corpus import CASES

from gitaudit.processors.collector_export import (
    REDACTION_NAME,
    TRANSFORM_NAME,
    collector_pattern,
    render_collector_processors,
)
from gitaudit.processors.ruleset import KIND_PATTERN, load_default_rules

RULES = load_default_rules(user_path="")


def test_every_rule_rendered():
    """Each pattern rule appears in the transform statements and redaction blocked_values; key rules as key patterns."""
    out = render_collector_processors(RULES)
    statements = "\n".join(out[TRANSFORM_NAME]["log_statements"][0]["statements"])
    for rule in RULES.rules:
        if rule.kind == KIND_PATTERN:
            assert f"[REDACTED:{rule.id}]" in statements, rule.id
        else:
            assert rule.source.replace("$", "$$") in out[REDACTION_NAME]["blocked_key_patterns"]
    assert len(out[REDACTION_NAME]["blocked_values"]) == sum(r.kind == KIND_PATTERN for r in RULES.rules)
    assert yaml.safe_load(yaml.safe_dump(out)) == out


def test_collector_patterns_mask_like_the_sanitizer():
    """Applying the rendered regex and template (Go ${name} syntax) removes the corpus secrets its rule finds."""
    compiled = {}
    for rule in RULES.rules:
        if rule.kind == KIND_PATTERN:
            regex, template = collector_pattern(rule)
            py_template = template.replace("${pre}", r"\g<pre>").replace("${post}", r"\g<post>")
            compiled[rule.id] = (re2.compile(regex), py_template, rule)
    checked = 0
    for case in CASES:
        for rid, (rx, tmpl, rule) in compiled.items():
            if rule.validate_spec or not rule.regex.search(case.text):
                continue
            out = rx.sub(lambda m, t=tmpl: m.expand(t), case.text)
            if f"[REDACTED:{rid}]" in out:
                checked += 1
                assert rx.search(out) is None or "[REDACTED:" in out
    assert checked > 100
