"""The labeled corpus: 100% recall on secret-bearing lines, zero changes to benign look-alikes."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

from gitaudit.processors import Sanitizer

_GEN_PATH = Path(__file__).parent / "corpus" / "sanitizer" / "generate.py"
_spec = importlib.util.spec_from_file_location("sanitizer_corpus_generate", _GEN_PATH)
gen = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gen
_spec.loader.exec_module(gen)

CASES = gen.secret_cases()
BENIGN = gen.benign_lines()


@pytest.fixture(scope="module")
def san() -> Sanitizer:
    return Sanitizer(fingerprint_key=b"corpus")


def test_corpus_size_and_coverage():
    """The corpus has >=300 secret lines over every family and >=200 benign look-alikes."""
    assert len(CASES) >= 300 and len(BENIGN) >= 200
    contexts = {c.context for c in CASES}
    for ctx in ["url", "header", "json", "yaml", "env", "cli", "git-stderr", "plain", "truncated", "double-json"]:
        assert ctx in contexts, ctx
    families = Counter(c.family for c in CASES)
    assert len(families) >= 40 and min(families.values()) >= 3


def test_recall_is_total(san):
    """Every secret of every corpus line is gone after sanitizing, and a second pass changes nothing."""
    missed = []
    for case in CASES:
        out = san.sanitize_text(case.text)
        if any(secret in out for secret in case.secrets) or san.sanitize_text(out) != out:
            missed.append((case.family, case.context, case.text[:80]))
    assert missed == [], f"{len(missed)} of {len(CASES)} missed: {missed[:5]}"


def test_recall_as_attribute_values(san):
    """The same lines as attribute values (values scope, record path) lose every secret too."""
    attrs = {f"a{i}": c.text for i, c in enumerate(CASES)}
    out = san.sanitize_record(None, attrs).attributes
    leaked = [c.family for i, c in enumerate(CASES) if any(s in out[f"a{i}"] for s in c.secrets)]
    assert leaked == []


def test_benign_unchanged(san):
    """No benign look-alike line is altered."""
    changed = [(line, san.sanitize_text(line)) for line in BENIGN if san.sanitize_text(line) != line]
    assert changed == []


def test_benign_unchanged_as_record(san):
    """Benign lines as body and attribute values yield no redaction counters."""
    rec = san.sanitize_record(BENIGN, {f"b{i}": line for i, line in enumerate(BENIGN)})
    assert rec.redacted_count == 0 and rec.body == BENIGN
