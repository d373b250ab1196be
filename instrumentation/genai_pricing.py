"""Claude request cost: a configurable price table, USD per million tokens.

Usage::

    from gitaudit.instrumentation.genai_pricing import cost_usd
    cost_usd("claude-sonnet-4-5-20250929", message.usage)   # -> 0.0123 or None

Each model entry has four rates in USD per million tokens (MTok): ``input``
(uncached input), ``output``, ``cache_read`` (cache hits) and ``cache_write``
(5-minute cache writes), plus optional ``cache_write_1h`` (1-hour cache writes;
default 2x ``input``) and ``long_prompt`` (a second set of rates that applies to
every token of a request whose prompt -- input + cache read + cache write --
exceeds ``threshold_tokens``, as Anthropic bills Haiku 5.5 and 1M-context
Sonnet 4 / 4.5).

Configuration, argument > environment > default (DESIGN.md section 7):

* ``PriceTable.load(path=..., overrides=...)`` arguments;
* ``GITAUDIT_GENAI_PRICES``: path of a YAML or JSON file with the same shape as
  :data:`DEFAULT_PRICES` (``{"models": {id: {input: .., output: .., ...}}}``).
  Its entries replace or add to the defaults model by model; a top-level
  ``replace: true`` drops the defaults;
* :data:`DEFAULT_PRICES`: Anthropic's published list prices (standard tier, no
  batch discount, no ``inference_geo`` or fast-mode multiplier), checked against
  https://platform.claude.com/docs/en/about-claude/pricing. Verify before
  billing anyone with it.

Model ids are matched after :func:`normalize_model_id` (lower case, provider
prefixes and ``-YYYYMMDD`` / ``@YYYYMMDD`` / ``-v1:0`` / ``[1m]`` / ``-latest``
suffixes removed), then by the entry id or one of its ``aliases``. An unknown
model has no cost (``None``), never 0: a dashboard must show "unknown", not
"free".

Costs are computed in :class:`decimal.Decimal` and returned as the nearest float,
so the same usage always gives the same, exact-as-printed value.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

#: Environment variable naming a YAML/JSON price file.
ENV_PRICES = "GITAUDIT_GENAI_PRICES"

_MTOK = Decimal(1_000_000)


def _p(input: float, output: float, cache_read: float, cache_write: float, cache_write_1h: float,
       aliases: tuple[str, ...] = (), long_prompt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"input": input, "output": output, "cache_read": cache_read,
                             "cache_write": cache_write, "cache_write_1h": cache_write_1h}
    if aliases:
        entry["aliases"] = list(aliases)
    if long_prompt:
        entry["long_prompt"] = dict(long_prompt)
    return entry


_OPUS_45 = (5.00, 25.00, 0.50, 6.25, 10.00)
_OPUS_4 = (15.00, 75.00, 1.50, 18.75, 30.00)
_SONNET_4 = (3.00, 15.00, 0.30, 3.75, 6.00)
_SONNET_1M = {"threshold_tokens": 200_000, "input": 6.00, "output": 22.50, "cache_read": 0.60,
              "cache_write": 7.50, "cache_write_1h": 12.00}

#: Default table: model family id -> rates in USD per MTok (standard tier).
DEFAULT_PRICES: dict[str, Any] = {
    "models": {
        "claude-fable-5-1": _p(10.00, 50.00, 0.25, 12.50, 20.00),
        "claude-mythos-5-1": _p(10.00, 50.00, 0.25, 12.50, 20.00),
        "claude-fable-5": _p(10.00, 50.00, 1.00, 12.50, 20.00),
        "claude-mythos-5": _p(10.00, 50.00, 1.00, 12.50, 20.00),
        "claude-opus-5-5": _p(4.00, 20.00, 0.20, 5.00, 8.00),
        "claude-opus-5": _p(*_OPUS_45),
        "claude-opus-4-8": _p(*_OPUS_45),
        "claude-opus-4-7": _p(*_OPUS_45),
        "claude-opus-4-6": _p(*_OPUS_45),
        "claude-opus-4-5": _p(*_OPUS_45),
        "claude-opus-4-1": _p(*_OPUS_4),
        "claude-opus-4": _p(*_OPUS_4, aliases=("claude-opus-4-0", "claude-4-opus")),
        "claude-3-opus": _p(*_OPUS_4, aliases=("claude-opus-3",)),
        # Sonnet 5.5 cache reads: $0.20 until 2026-10-07, $0.10 since.
        "claude-sonnet-5-5": _p(2.00, 10.00, 0.10, 2.50, 4.00),
        "claude-sonnet-5": _p(2.00, 10.00, 0.20, 2.50, 4.00),
        "claude-sonnet-4-6": _p(*_SONNET_4),
        "claude-sonnet-4-5": _p(*_SONNET_4, long_prompt=_SONNET_1M),
        "claude-sonnet-4": _p(*_SONNET_4, aliases=("claude-sonnet-4-0", "claude-4-sonnet"),
                              long_prompt=_SONNET_1M),
        "claude-3-7-sonnet": _p(*_SONNET_4, aliases=("claude-sonnet-3-7",)),
        "claude-3-5-sonnet": _p(*_SONNET_4, aliases=("claude-sonnet-3-5",)),
        "claude-haiku-5-5": _p(0.10, 0.50, 0.01, 0.125, 0.20, long_prompt={
            "threshold_tokens": 100_000, "input": 0.50, "output": 2.50, "cache_read": 0.05,
            "cache_write": 0.625, "cache_write_1h": 1.00}),
        "claude-haiku-4-5": _p(1.00, 5.00, 0.10, 1.25, 2.00),
        "claude-3-5-haiku": _p(0.80, 4.00, 0.08, 1.00, 1.60, aliases=("claude-haiku-3-5",)),
        "claude-3-haiku": _p(0.25, 1.25, 0.03, 0.30, 0.50, aliases=("claude-haiku-3",)),
    }
}


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each token kind (``Decimal`` for exact sums)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], *, where: str) -> Rates:
        """Build from ``{input, output, cache_read, cache_write[, cache_write_1h]}``.

        Raises:
            ValueError: a rate is missing, not a number, or negative (names ``where``).
        """
        values: dict[str, Decimal] = {}
        for key in ("input", "output", "cache_read", "cache_write"):
            if key not in entry:
                raise ValueError(f"price table {where}: missing {key!r}")
            values[key] = _decimal(entry[key], f"{where}.{key}")
        raw_1h = entry.get("cache_write_1h")
        values["cache_write_1h"] = (
            _decimal(raw_1h, f"{where}.cache_write_1h") if raw_1h is not None else values["input"] * 2
        )
        return cls(**values)


@dataclass(frozen=True)
class ModelPrice:
    """The price of one model family: base rates and an optional long-prompt tier."""

    model: str
    rates: Rates
    long_prompt_threshold_tokens: int | None = None
    long_prompt_rates: Rates | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        """Rates that apply to a request whose prompt has ``prompt_tokens`` tokens."""
        if (self.long_prompt_rates is not None and self.long_prompt_threshold_tokens is not None
                and prompt_tokens > self.long_prompt_threshold_tokens):
            return self.long_prompt_rates
        return self.rates


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"price table {where}: not a number: {value!r}")
    try:
        d = Decimal(str(value))
    except Exception as exc:  # decimal.InvalidOperation
        raise ValueError(f"price table {where}: not a number: {value!r}") from exc
    if not d.is_finite() or d < 0:
        raise ValueError(f"price table {where}: must be a finite number >= 0, got {value!r}")
    return d


_DATE_SUFFIX = re.compile(r"(?:-|@)\d{8}$")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_PROVIDER_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic[./]|^anthropic/")


def normalize_model_id(model: str) -> str:
    """Reduce a model id to its family id: ``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``.

    Lower-cases and strips, in order: a provider prefix (``anthropic.``,
    ``us.anthropic.``, ``anthropic/``), a ``[1m]`` context tag, a ``-v1:0``
    Bedrock version, a ``-YYYYMMDD`` or ``@YYYYMMDD`` date, a ``-latest`` tag.
    """
    m = model.strip().lower()
    m = _PROVIDER_PREFIX.sub("", m)
    m = m.replace("[1m]", "")
    m = _VERSION_SUFFIX.sub("", m)
    m = _DATE_SUFFIX.sub("", m)
    if m.endswith("-latest"):
        m = m[: -len("-latest")]
    return m


def _usage_get(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, Mapping) else getattr(usage, key, None)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def usage_tokens(usage: Any) -> dict[str, int]:
    """Token counts of an Anthropic ``Usage`` (object or dict), by kind.

    Returns:
        ``{"input", "output", "cache_read", "cache_write", "cache_write_1h"}``:
        ``input`` is the uncached input (Anthropic's ``input_tokens``);
        ``cache_write`` the 5-minute writes and ``cache_write_1h`` the 1-hour
        writes (from ``cache_creation.ephemeral_*_input_tokens`` when present,
        else all of ``cache_creation_input_tokens`` counts as 5-minute).
    """
    creation_total = _usage_get(usage, "cache_creation_input_tokens")
    detail = usage.get("cache_creation") if isinstance(usage, Mapping) else getattr(usage, "cache_creation", None)
    write_1h = _usage_get(detail, "ephemeral_1h_input_tokens") if detail is not None else 0
    write_1h = min(write_1h, creation_total)
    return {
        "input": _usage_get(usage, "input_tokens"),
        "output": _usage_get(usage, "output_tokens"),
        "cache_read": _usage_get(usage, "cache_read_input_tokens"),
        "cache_write": creation_total - write_1h,
        "cache_write_1h": write_1h,
    }


class PriceTable:
    """Model family id -> :class:`ModelPrice`; computes request costs.

    Args:
        prices: ``{"models": {id: entry}}`` or directly ``{id: entry}``; an entry
            is ``{input, output, cache_read, cache_write[, cache_write_1h]
            [, aliases: [ids]][, long_prompt: {threshold_tokens, <rates>}]}`` in
            USD per MTok.

    Raises:
        ValueError: a malformed entry (the message names it).
    """

    def __init__(self, prices: Mapping[str, Any]) -> None:
        models = prices.get("models", prices) if isinstance(prices, Mapping) else None
        if not isinstance(models, Mapping):
            raise ValueError("price table: expected a mapping of model id -> rates")
        self._by_id: dict[str, ModelPrice] = {}
        for model_id, entry in models.items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"price table {model_id}: expected a mapping of rates")
            key = normalize_model_id(str(model_id))
            long_rates = threshold = None
            long_entry = entry.get("long_prompt")
            if long_entry is not None:
                if not isinstance(long_entry, Mapping) or "threshold_tokens" not in long_entry:
                    raise ValueError(f"price table {model_id}.long_prompt: needs threshold_tokens and rates")
                threshold = int(long_entry["threshold_tokens"])
                long_rates = Rates.from_mapping(long_entry, where=f"{model_id}.long_prompt")
            price = ModelPrice(key, Rates.from_mapping(entry, where=str(model_id)), threshold, long_rates)
            self._by_id[key] = price
            for alias in entry.get("aliases") or ():
                self._by_id[normalize_model_id(str(alias))] = price

    @classmethod
    def default(cls) -> PriceTable:
        """The built-in table (:data:`DEFAULT_PRICES`)."""
        return cls(DEFAULT_PRICES)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None,
             overrides: Mapping[str, Any] | None = None) -> PriceTable:
        """Defaults, then the file at ``path`` (else ``$GITAUDIT_GENAI_PRICES``), then ``overrides``.

        Each later source replaces or adds entries model by model; a source
        with ``replace: true`` drops what came before it.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file is not valid YAML/JSON or has a malformed entry.
        """
        merged: dict[str, Any] = dict(DEFAULT_PRICES["models"])
        file_path = path if path is not None else os.environ.get(ENV_PRICES) or None
        for source in (_read_price_file(file_path) if file_path else None, overrides):
            if source is None:
                continue
            models = source.get("models", source)
            if source.get("replace") is True:
                merged = {}
            merged.update({k: v for k, v in models.items() if k != "replace"})
        return cls({"models": merged})

    def lookup(self, model: str | None) -> ModelPrice | None:
        """The price entry of ``model`` (any spelling :func:`normalize_model_id` accepts), or None."""
        if not model:
            return None
        return self._by_id.get(normalize_model_id(model))

    def cost_usd(self, model: str | None, usage: Any) -> float | None:
        """USD cost of one request; ``None`` when the model is not in the table.

        Args:
            model: the model id (the response's model, else the requested one).
            usage: Anthropic ``Usage`` object or dict (``input_tokens``,
                ``output_tokens``, ``cache_read_input_tokens``,
                ``cache_creation_input_tokens``, optional ``cache_creation``).
        """
        price = self.lookup(model)
        if price is None or usage is None:
            return None
        t = usage_tokens(usage)
        rates = price.rates_for(t["input"] + t["cache_read"] + t["cache_write"] + t["cache_write_1h"])
        total = (
            t["input"] * rates.input
            + t["output"] * rates.output
            + t["cache_read"] * rates.cache_read
            + t["cache_write"] * rates.cache_write
            + t["cache_write_1h"] * rates.cache_write_1h
        ) / _MTOK
        return float(total)


def _read_price_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        if str(path).lower().endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ValueError(f"price file {path}: not valid YAML/JSON ({type(exc).__name__})") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"price file {path}: expected a mapping at the top level")
    return data


_default_lock = threading.Lock()
_default_table: PriceTable | None = None
_default_source: str | None = None


def default_table() -> PriceTable:
    """The process-wide table: defaults + ``$GITAUDIT_GENAI_PRICES`` (reloaded when that changes).

    A price file that cannot be loaded is logged (without its content) and the
    built-in defaults are used, so a bad file never breaks the audited call.
    """
    global _default_table, _default_source
    source = os.environ.get(ENV_PRICES) or ""
    with _default_lock:
        if _default_table is None or source != _default_source:
            try:
                _default_table = PriceTable.load()
            except (OSError, ValueError) as exc:
                _log.warning("gitaudit: cannot load %s=%s (%s); using default prices", ENV_PRICES, source, exc)
                _default_table = PriceTable.default()
            _default_source = source
        return _default_table


def cost_usd(model: str | None, usage: Any, table: PriceTable | None = None) -> float | None:
    """USD cost of one Claude request per ``table`` (default: :func:`default_table`).

    Returns ``None`` -- never 0 -- for a model the table does not know.
    """
    return (table or default_table()).cost_usd(model, usage)


__all__ = [
    "DEFAULT_PRICES",
    "ENV_PRICES",
    "ModelPrice",
    "PriceTable",
    "Rates",
    "cost_usd",
    "default_table",
    "normalize_model_id",
    "usage_tokens",
]
