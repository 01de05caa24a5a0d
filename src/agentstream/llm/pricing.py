"""What a model call cost: the provider's own figure, else a price source.

In order:

1. **Reported by the provider.** Gateways and some APIs put the cost of each answer in the
   response: LiteLLM's proxy in the ``x-litellm-response-cost`` header, OpenRouter and others
   as ``usage.cost`` in the body. :func:`reported_cost` reads them; providers use it first.
2. **Your price table** (:class:`PriceTable` entries, exact name or longest prefix): an
   override for negotiated prices, fine-tunes, local models and gateway aliases.
3. **A maintained price list**: the ``genai-prices`` package (Pydantic's list of model prices,
   shipped as data inside the package; no network), when it is installed.

A model none of them prices costs 0: it is logged once as a warning per model, counted in
``agentstream_llm_unpriced_calls_total`` and shown by ``agentstream status``; a per-event cost
ceiling on such a model is refused at start-up unless the budget says ``allow_unpriced=True``
(for a gateway that reports cost).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentstream.llm.base import Usage

log = logging.getLogger("agentstream.pricing")

COST_HEADERS: tuple[str, ...] = ("x-litellm-response-cost",)
"""Response headers that carry a gateway's cost of the answer, in US dollars."""


def reported_cost(headers: Mapping[str, str], body: Mapping[str, Any] | None) -> float | None:
    """The cost of an answer as the provider or gateway reported it, if it did.

    Args:
        headers: Response headers (any case).
        body: Response body (``usage.cost`` is read).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    for name in COST_HEADERS:
        if name in lower:
            try:
                value = float(lower[name])
            except ValueError:
                continue
            if value >= 0:
                return value
    usage = (body or {}).get("usage")
    if isinstance(usage, Mapping):
        cost = usage.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            return float(cost)
    return None


def cost_of_answer(
    prices: PriceTable,
    model: str,
    usage: Usage,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``cost_usd`` and ``cost_source`` of an answer, to update an :class:`LLMResponse` with.

    The provider's reported cost when it sent one (``provider``), else the price table's
    (``price_table``), else 0 (``unpriced``, warned about once per model).
    """
    reported = reported_cost(headers, body)
    if reported is not None:
        return {"cost_usd": reported, "cost_source": "provider"}
    quoted = prices.quote(model, usage)
    if quoted is not None:
        return {"cost_usd": quoted, "cost_source": "price_table"}
    return {"cost_usd": prices.cost(model, usage), "cost_source": "unpriced"}


@dataclass(frozen=True)
class ModelPrice:
    """Price of one model, USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "sim-1": ModelPrice(1.00, 4.00),
}
"""Local entries every table starts from: the simulator's model (real models are priced by
``genai-prices``)."""


class PriceTable:
    """Model prices: local entries (with prefix matching) over the ``genai-prices`` list.

    Args:
        prices: Entries that replace or extend the defaults; they win over ``genai-prices``.
        include_defaults: Start from :data:`DEFAULT_PRICES`.
        maintained: Fall back to the ``genai-prices`` package for models not in the table.
    """

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        *,
        include_defaults: bool = True,
        maintained: bool = True,
    ) -> None:
        self._prices: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if include_defaults else {}
        self._prices.update(prices or {})
        self._maintained = maintained
        self._listed: dict[str, ModelPrice | None] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def set(self, model: str, input_per_mtok: float, output_per_mtok: float) -> None:
        """Set one model's price."""
        self._prices[model] = ModelPrice(input_per_mtok, output_per_mtok)

    def price(self, model: str) -> ModelPrice | None:
        """The local price of a model: exact name, else the longest matching prefix."""
        if model in self._prices:
            return self._prices[model]
        best = max((m for m in self._prices if model.startswith(m)), key=len, default=None)
        return None if best is None else self._prices[best]

    def is_priced(self, model: str) -> bool:
        """Whether the table or the maintained list knows the model's price."""
        return self._resolve(model) is not None

    def _resolve(self, model: str) -> ModelPrice | None:
        price = self.price(model)
        if price is not None or not self._maintained:
            return price
        if model not in self._listed:
            # genai-prices takes a third of a millisecond per lookup: ask once per model for
            # its per-token rates (tiered long-context prices are not modelled).
            self._listed[model] = _maintained_price(model)
        return self._listed[model]

    def quote(self, model: str, usage: Usage) -> float | None:
        """Cost of a call in USD, or None when no source prices the model."""
        price = self._resolve(model)
        if price is None:
            return None
        return (
            usage.prompt_tokens * price.input_per_mtok
            + usage.completion_tokens * price.output_per_mtok
        ) / 1_000_000

    def cost(self, model: str, usage: Usage) -> float:
        """Cost of a call in USD; 0 for a model no source prices (warned about once)."""
        cost = self.quote(model, usage)
        if cost is not None:
            return cost
        with self._lock:
            first = model not in self._warned
            self._warned.add(model)
        if first:
            log.warning(
                "model %r has no price (not in the price table nor in genai-prices): its calls "
                "count as $0 and cost ceilings cannot see them. Add it with "
                "PriceTable.set(%r, ...) or use a gateway that reports cost.",
                model,
                model,
            )
        return 0.0


def _maintained_price(model: str) -> ModelPrice | None:
    """The ``genai-prices`` rates of a model, or None (unknown model, or package missing)."""
    try:
        import genai_prices
    except ImportError:  # pragma: no cover - depends on the install
        return None
    rates = []
    for usage in (
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=0),
        genai_prices.Usage(input_tokens=0, output_tokens=1_000_000),
    ):
        try:
            rates.append(float(genai_prices.calc_price(usage, model).total_price))
        except LookupError:
            return None
    return ModelPrice(rates[0], rates[1])
