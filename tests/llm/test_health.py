"""/healthz and /readyz over real HTTP follow the provider's breaker and the outbox."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import agentstream
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.breaker_state import BreakerPolicy
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.simulator import SimulatorConfig, SimulatorServer
from agentstream.observability import PrometheusMiddleware
from agentstream.observability.health import HealthState
from agentstream.testing import AppHarness
from tests.llm.conftest import FAST


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_readiness_fails_while_the_provider_breaker_is_open_and_liveness_holds(
    simulator, tmp_path: Path
) -> None:
    sim = simulator(latency_ms=5.0)
    metrics = PrometheusMiddleware(port=0)
    app = agentstream.App(
        "health",
        broker=f"sqlite:///{tmp_path / 'health.db'}",
        llm=OpenAIProvider(base_url=sim.url, api_key="sim", timeout_s=2.0),
        middleware=[metrics],
        breaker=CircuitBreaker(BreakerPolicy(threshold=2, open_s=0.5, max_open_s=1.0)),
        config=FAST,
    )

    @app.agent(source="work", identity=lambda p: p["id"])
    async def ask(ctx: agentstream.Context, payload: dict) -> str:
        return (await ctx.llm(user=payload["text"])).text or ""

    async with AppHarness(app) as h:
        assert metrics.port is not None
        port = metrics.port
        await wait_for(lambda: get(port, "/readyz")[0] == 200, "ready")
        assert get(port, "/healthz")[0] == 200
        assert (
            "agentstream_deliveries"
            in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        )

        sim.stop()  # the provider goes away
        await h.produce("work", [{"id": "e1", "text": "hello"}])
        await wait_for(lambda: get(port, "/readyz")[0] == 503, "not ready")
        _, body = get(port, "/readyz")
        assert body["provider"]["ok"] is False and body["provider"]["open_breakers"], body
        assert get(port, "/healthz")[0] == 200  # a restart would not help: still alive

        revived = SimulatorServer(SimulatorConfig(latency_ms=5.0), port=sim.port).start()
        try:
            await wait_for(lambda: get(port, "/readyz")[0] == 200, "ready again")
            await h.wait_drained()
        finally:
            revived.stop()


def test_outputs_that_never_leave_fail_liveness() -> None:
    now = [0.0]
    health = HealthState(clock=lambda: now[0])
    health.workers = 1
    health.polled("a")
    assert health.report()["alive"] and health.report()["ready"]
    health.outbox(healthy=False, pending=7, stalled_s=61.0, journal_ok=True)
    report = health.report()
    assert not report["alive"] and not report["ready"] and report["outbox"]["pending"] == 7
    health.outbox(healthy=True, pending=0, stalled_s=0.0, journal_ok=False)
    assert health.report()["alive"] and not health.report()["ready"]  # journal: readiness only
    now[0] += 61.0
    assert not health.report()["alive"]  # a poll loop that stopped turning
