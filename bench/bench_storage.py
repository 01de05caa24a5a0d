"""Journal bytes per event: a no-op event and an event with one model call on a 2 KB prompt.

    python -m bench.bench_storage [--events 2000] [--postgres DSN | --no-postgres]

Each kind of event runs live through the executor into a fresh journal (a SQLite file; a fresh
schema on PostgreSQL), with the in-process LLM simulator at zero latency for the model call. The
figure is the journal's growth divided by the events: everything it keeps per event (the event
row with its source message, steps, the prompt and answer blobs, indexes; on SQLite after
folding the WAL in, on PostgreSQL with TOAST and indexes, after a CHECKPOINT).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
from pathlib import Path
from typing import Any

from agentstream import App, Context
from agentstream.backends import Backends
from agentstream.event import Message
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from bench.live import run_live
from bench.results import DEFAULT_POSTGRES, emit, pg_schema, pg_schema_bytes, scratch, sqlite_bytes

PROMPT_BYTES = 2048


def build_app() -> App:
    app = App("storage", llm=SimulatedProvider(SimulatorConfig(seed=1, latency_ms=0)))

    @app.agent(source="events", key=lambda p: p["key"], identity=lambda p: p["id"])
    async def noop(ctx: Context, payload: dict[str, Any]) -> None:
        return None

    @app.agent(source="prompts", key=lambda p: p["key"], identity=lambda p: p["id"])
    async def decide(ctx: Context, payload: dict[str, Any]) -> str:
        return (await ctx.llm(user=payload["text"])).text or ""

    return app


def messages(topic: str, n: int, text_bytes: int) -> list[Message]:
    """``n`` JSON events; each ``text`` is ``text_bytes`` of random words (prose-like entropy)."""
    rng = random.Random(7)
    vocabulary = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(2000)
    ]
    out = []
    for i in range(n):
        text = " ".join(rng.choices(vocabulary, k=text_bytes // 3))[:text_bytes]
        value = json.dumps({"id": f"{topic}-{i}", "key": f"k{i % 200}", "text": text}).encode()
        out.append(Message(topic, i % 8, i // 8, f"k{i % 200}".encode(), value))
    return out


async def grow(url: str, size: Any, agent: str, batch: list[Message]) -> float:
    """Bytes the journal at ``url`` grows per event of ``batch`` run by ``agent``."""
    app = build_app()
    store = Backends(url, url).store()
    await store.open()
    try:
        before = size()
        await run_live(app, agent, store, batch, concurrency=32)
    finally:
        await store.close()
    return (size() - before) / len(batch)


async def main(args: argparse.Namespace) -> dict[str, float]:
    n = args.events
    kinds = {"noop": ("noop", messages("events", n, 40)),
             "llm": ("decide", messages("prompts", n, PROMPT_BYTES))}  # fmt: skip
    results: dict[str, float] = {}
    with scratch() as tmp:
        for kind, (agent, batch) in kinds.items():
            path = Path(tmp) / f"{kind}.db"
            url = f"sqlite:///{path}"
            results[f"bytes_per_{kind}_event_sqlite"] = await grow(
                url, lambda p=path: sqlite_bytes(p) if p.exists() else 0, agent, batch
            )
            if args.postgres:
                with pg_schema(args.postgres) as pg:
                    results[f"bytes_per_{kind}_event_postgres"] = await grow(
                        pg, lambda u=pg: pg_schema_bytes(args.postgres, u), agent, batch
                    )
    print(f"{n} events per kind; one model call on a {PROMPT_BYTES}-byte prompt for 'llm'")
    for name, value in results.items():
        print(f"{name:36s} {value:10,.0f} bytes")
    emit(results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", dest="postgres", action="store_const", const=None)
    asyncio.run(main(parser.parse_args()))
