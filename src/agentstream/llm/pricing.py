"""Prices of common models, in US dollars per million tokens, overridable by users.

The figures are list prices at the time of writing; pass your own table to
:class:`PriceTable` (or call :meth:`PriceTable.set`) when yours differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentstream.llm.base import Usage


@dataclass(frozen=True)
class ModelPrice:
    """Price of one model, USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "o3": ModelPrice(2.00, 8.00),
    "o4-mini": ModelPrice(1.10, 4.40),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00),
    "claude-3-7-sonnet": ModelPrice(3.00, 15.00),
    "claude-sonnet-4": ModelPrice(3.00, 15.00),
    "claude-opus-4": ModelPrice(15.00, 75.00),
    "sim-1": ModelPrice(1.00, 4.00),
}


class PriceTable:
    """Model prices with prefix matching (``gpt-4o-2024-08-06`` is priced as ``gpt-4o``).

    Args:
        prices: Entries that replace or extend the defaults.
        include_defaults: Start from :data:`DEFAULT_PRICES`.
    """

    def __init__(
        self, prices: Mapping[str, ModelPrice] | None = None, *, include_defaults: bool = True
    ) -> None:
        self._prices: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if include_defaults else {}
        self._prices.update(prices or {})

    def set(self, model: str, input_per_mtok: float, output_per_mtok: float) -> None:
        """Set one model's price."""
        self._prices[model] = ModelPrice(input_per_mtok, output_per_mtok)

    def price(self, model: str) -> ModelPrice | None:
        """The price of a model: exact name, else the longest matching prefix."""
        if model in self._prices:
            return self._prices[model]
        best = max((m for m in self._prices if model.startswith(m)), key=len, default=None)
        return None if best is None else self._prices[best]

    def cost(self, model: str, usage: Usage) -> float:
        """Cost of a call in USD (0 for unknown models)."""
        price = self.price(model)
        if price is None:
            return 0.0
        return (
            usage.prompt_tokens * price.input_per_mtok
            + usage.completion_tokens * price.output_per_mtok
        ) / 1_000_000
