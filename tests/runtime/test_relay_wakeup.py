"""The outbox relay is woken by completions that wrote records, never by those that wrote none.

Before, every finished event woke the relay, which then asked the journal for outbox rows: on a
no-op agent a third of the journal's queries found nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentstream import App, Context
from agentstream.event import Message
from agentstream.journal.sqlite import SqliteStore
from agentstream.middleware import MiddlewareStack
from agentstream.runtime.executor import Executor
from agentstream.runtime.intake import interpret


def app() -> App:
    a = App("wakeup")

    @a.agent(source="in", identity=lambda p: p["id"], output="out")
    async def answers(ctx: Context, payload: dict[str, Any]) -> dict[str, Any] | None:
        return {"echo": payload["id"]} if payload["reply"] else None

    return a


async def test_only_completions_that_wrote_outputs_wake_the_relay(tmp_path: Path):
    wakeups: list[str] = []
    spec = app().agents["answers"]
    store = SqliteStore(tmp_path / "j.db")
    await store.open()
    try:
        executor = Executor(
            spec,
            store,
            None,
            MiddlewareStack(),
            owner="w",
            group="g",
            on_outputs=lambda: wakeups.append("wake"),
        )
        for offset, (event_id, reply) in enumerate([("a", "false"), ("b", "true"), ("c", "false")]):
            value = f'{{"id": "{event_id}", "reply": {reply}}}'.encode()
            await executor.process(interpret(spec, Message("in", 0, offset, None, value)))
        assert [r.record.value for r in await store.outbox("answers", "b")] != []
        assert await store.outbox("answers", "a") == []
        assert wakeups == ["wake"]
    finally:
        await store.close()
