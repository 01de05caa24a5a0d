"""The journaled HTTP transport's overhead per model call, against a direct SDK call.

Both sides call the same LLM simulator (``agentstream simulate-llm`` in its own process, zero
latency, so only the client side is measured) with ``openai.AsyncOpenAI`` chat completions, one
call after another:

* **direct**: a plain ``AsyncOpenAI`` client;
* **journaled**: the same calls from inside an agentstream handler through
  ``agentstream.integrations.openai_client()`` (fingerprint, budget check, middleware, the
  request and answer journaled in SQLite, the answer handed back from the record), without and
  with admission control;
* **replayed**: the same event resumed: every call answered from the journal, nothing sent.

Run::

    python -m bench.bench_integrations            # 300 calls per side
    python -m bench.bench_integrations --calls 1000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import openai

import agentstream
from agentstream import Budget, Context, ProviderUnavailable, Retry
from agentstream.integrations import JournaledTransport, openai_client
from agentstream.llm.admission import AdmissionControl
from agentstream.testing import run_agent
from bench.bench_llm import Simulator
from bench.results import emit, scratch

MESSAGES = [{"role": "user", "content": "Where is my order? It was due last week."}]


async def direct(url: str, calls: int) -> float:
    """Seconds per call of a plain SDK client."""
    async with openai.AsyncOpenAI(base_url=url, api_key="sim", max_retries=0) as client:
        for _ in range(20):  # warm-up: connections, imports
            await client.chat.completions.create(model="sim-1", messages=MESSAGES)  # type: ignore[arg-type]
        started = time.perf_counter()
        for _ in range(calls):
            await client.chat.completions.create(model="sim-1", messages=MESSAGES)  # type: ignore[arg-type]
        return (time.perf_counter() - started) / calls


async def journaled(url: str, calls: int, folder: Path, *, admission: bool) -> tuple[float, float]:
    """Seconds per call through the journaled transport, live and then replayed."""
    transport = JournaledTransport()
    client = openai_client(base_url=url, api_key="sim", transport=transport)
    app = agentstream.App(
        "bench",
        broker=f"sqlite:///{folder / f'bench-{admission}.db'}",
        admission=AdmissionControl() if admission else False,
    )
    timings: list[float] = []

    @app.agent(
        source="tickets",
        identity=lambda t: t["id"],
        budget=Budget(max_llm_calls=None),
        retry=Retry(attempts=3, backoff_initial=0.0, backoff_max=0.0),
    )
    async def agent(ctx: Context, t: dict[str, Any]) -> int:
        for i in range(20 if t["id"] == "warm" else 0):
            await client.chat.completions.create(
                model="sim-1", messages=[{"role": "user", "content": f"warm {i}"}]
            )
        started = time.perf_counter()
        for i in range(0 if t["id"] == "warm" else calls):
            await client.chat.completions.create(
                model="sim-1", messages=[*MESSAGES, {"role": "user", "content": str(i)}]
            )
        timings.append((time.perf_counter() - started) / calls)
        if ctx.attempt == 1 and t["id"] != "warm":
            raise ProviderUnavailable("resume the event to measure replay")
        return calls

    await run_agent(app, "agent", {"id": "warm"})
    timings.clear()
    await run_agent(app, "agent", {"id": "measured"})
    await run_agent(app, "agent", {"id": "measured"}, offset=1)
    await transport.aclose()
    return timings[0], timings[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    sim_args = argparse.Namespace(
        rpm=10**9, tpm=10**12, latency_ms=0, seed=1, completion_words=20, window_s=60
    )
    async with Simulator(sim_args) as sim:
        with scratch() as folder:
            base = await direct(sim.url, args.calls)
            live, replay = await journaled(sim.url, args.calls, folder, admission=False)
            live_adm, _ = await journaled(sim.url, args.calls, folder, admission=True)
            base_after = await direct(sim.url, args.calls)
    base = (base + base_after) / 2
    print(f"{args.calls} chat-completions calls per side, simulator latency 0")
    rows = [
        ("direct AsyncOpenAI", base),
        ("journaled transport", live),
        ("journaled + admission", live_adm),
        ("replayed from the journal", replay),
    ]
    for label, value in rows:
        print(f"  {label:<28} {value * 1000:7.2f} ms/call  ratio {value / base:.2f}")
    print(f"  {'overhead per journaled call':<28} {(live - base) * 1000:7.2f} ms")
    emit(
        {
            "integrations_direct_ms_per_call": base * 1000,
            "integrations_journaled_ms_per_call": live * 1000,
            "integrations_overhead_ratio": live / base,
            "integrations_admission_overhead_ratio": live_adm / base,
            "integrations_replay_ratio": replay / base,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
