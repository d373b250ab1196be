"""Property tests: random secrets embedded in random text are always removed; sanitizing is idempotent."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_sanitizer_corpus import gen

from gitaudit.processors import Sanitizer

SAN = Sanitizer(fingerprint_key=b"prop")
FAMILIES = sorted(gen.TOKENS)
SEPARATORS = st.sampled_from([" ", "\n", "\t", ", ", " | ", "\"", "'", "(", ")", "=", ": ", "; "])
FILLER = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(FAMILIES),
    seed=st.integers(min_value=0, max_value=2**32),
    before=FILLER,
    after=FILLER,
    sep1=SEPARATORS,
    sep2=SEPARATORS,
)
def test_embedded_secret_always_removed(family, seed, before, after, sep1, sep2):
    """Any generated token, between separators in arbitrary Unicode text, never survives."""
    token = gen.TOKENS[family](random.Random(seed))
    text = before + sep1 + token + sep2 + after
    out = SAN.sanitize_text(text)
    assert token not in out
    assert SAN.sanitize_text(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_idempotent_on_any_text(text):
    """For any text, sanitize(sanitize(x)) == sanitize(x)."""
    once = SAN.sanitize_text(text)
    assert SAN.sanitize_text(once) == once


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=12,
    )
)
def test_any_value_keeps_its_shape(value):
    """sanitize_value never raises and keeps containers' shape (list length, map size at most)."""
    out = SAN.sanitize_value(value)
    if isinstance(value, list):
        assert isinstance(out, list) and len(out) == len(value)
    if isinstance(value, dict):
        assert isinstance(out, dict) and len(out) <= len(value)
