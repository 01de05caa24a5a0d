"""The refund scenario's side effects, counted by the effect itself (in-process tests)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any


class Payments:
    """A downstream payments API that deduplicates by idempotency key and counts refunds."""

    def __init__(self, seed: int = 5, max_latency_s: float = 0.0) -> None:
        self.refunds: Counter[str] = Counter()
        self.by_key: dict[str, dict[str, Any]] = {}
        self.lookups = 0
        self._rng = random.Random(seed)
        self._max_latency_s = max_latency_s

    async def pause(self) -> None:
        if self._max_latency_s:
            await asyncio.sleep(self._rng.random() * self._max_latency_s)

    def refund(self, key: str, order_id: str, cents: int) -> dict[str, Any]:
        self.refunds[key] += 1
        self.by_key[key] = {"refund_id": f"r-{len(self.by_key) + 1}", "order_id": order_id}
        return self.by_key[key]

    def lookup(self, key: str) -> dict[str, Any] | None:
        return self.by_key.get(key)
