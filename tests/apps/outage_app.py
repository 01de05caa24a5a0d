"""An app for the provider-outage tests: one model call and one effect per event.

Settings come from the environment the test sets:

OUTAGE_SIM_URL        the primary simulator (model ``sim-1``)
OUTAGE_FALLBACK_URL   optional second simulator serving ``sim-backup``, the agent's fallback
OUTAGE_EFFECTS        SQLite file where the effect writes one row per execution
OUTAGE_BREAKER        ``off``: no circuit breaker (the behaviour before it existed)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

import agentstream
from agentstream import Context
from agentstream.llm.base import LLMProvider
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.breaker_state import BreakerPolicy
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.routing import ModelRouter

FALLBACK_URL = os.environ.get("OUTAGE_FALLBACK_URL")
EFFECTS = os.environ.get("OUTAGE_EFFECTS", "effects.db")


def provider() -> LLMProvider:
    primary = OpenAIProvider(
        base_url=os.environ["OUTAGE_SIM_URL"], api_key="sim", timeout_s=2.0, name="primary"
    )
    if not FALLBACK_URL:
        return primary
    backup = OpenAIProvider(base_url=FALLBACK_URL, api_key="sim", timeout_s=2.0, name="backup")
    return ModelRouter({"sim-1": primary, "sim-backup": backup})


app = agentstream.App(
    "outage",
    llm=provider,
    # OUTAGE_BREAKER=off shows the behaviour before circuit breakers (attempts burnt).
    breaker=CircuitBreaker(BreakerPolicy(threshold=5, open_s=1.0, max_open_s=3.0))
    if os.environ.get("OUTAGE_BREAKER") != "off"
    else False,
    config=agentstream.RuntimeConfig(
        session_timeout_s=3.0, heartbeat_s=0.3, commit_interval_s=0.1, shutdown_grace_s=2.0
    ),
)


def _record(event_id: str) -> str:
    conn = sqlite3.connect(EFFECTS, timeout=30)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, pid INTEGER)")
        conn.execute("INSERT INTO effects VALUES (?, ?)", (event_id, os.getpid()))
        conn.commit()
    finally:
        conn.close()
    return "done"


async def notify(event_id: str) -> str:
    return await asyncio.to_thread(_record, event_id)


@app.agent(
    source="work",
    output="done",
    concurrency=4,
    identity=lambda p: p["id"],
    fallback_model="sim-backup" if FALLBACK_URL else None,
)
async def summarize(ctx: Context, payload: dict) -> str:
    answer = (await ctx.llm(user=payload["text"])).text or ""
    await ctx.effect("notify", notify, payload["id"])
    return answer
