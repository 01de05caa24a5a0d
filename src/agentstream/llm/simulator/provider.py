"""The in-process simulated provider: the LLM simulator without HTTP in between."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agentstream.failures import ProviderTimeout
from agentstream.llm.base import LLMRequest, LLMResponse
from agentstream.llm.chat_format import (
    chat_body,
    error_for_status,
    rate_limit_snapshot,
    response_from_chat,
)
from agentstream.llm.pricing import PriceTable, cost_of_answer
from agentstream.llm.simulator.model import CallLog, LLMSimulator, SimulatorConfig


class SimulatedProvider:
    """Answers requests from an in-process :class:`LLMSimulator`.

    Args:
        config: Simulator behaviour (ignored when ``simulator`` is given).
        simulator: A simulator shared with other providers.
        call_log: SQLite file to append every call to (for tests counting calls across
            processes).
        prices: Price table for cost accounting.
        timeout_s: How long a hung request waits before it fails as a timeout.
    """

    name = "simulated"

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        simulator: LLMSimulator | None = None,
        call_log: str | Path | None = None,
        prices: PriceTable | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.simulator = simulator or LLMSimulator(config)
        self._log = CallLog(call_log) if call_log else None
        self.prices = prices or PriceTable()
        self._timeout_s = timeout_s

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        """Make one simulated call."""
        started = time.monotonic()
        reply = self.simulator.reply(chat_body(request), step_key=step_key)
        if self._log is not None:
            await asyncio.to_thread(self._log.append, step_key, reply)
        if reply.hang:
            await asyncio.sleep(self._timeout_s)
            raise ProviderTimeout(f"simulated model did not answer within {self._timeout_s}s")
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200:
            raise error_for_status(reply.status, reply.body, reply.headers)
        response = response_from_chat(reply.body, latency_ms=(time.monotonic() - started) * 1000)
        return response.model_copy(
            update={
                **cost_of_answer(
                    self.prices, response.model, response.usage, reply.headers, reply.body
                ),
                "rate_limits": rate_limit_snapshot(reply.headers),
            }
        )

    async def aclose(self) -> None:
        """Close the call log."""
        if self._log is not None:
            self._log.close()
