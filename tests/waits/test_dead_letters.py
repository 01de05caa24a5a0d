"""A waiting event that fails after its wait is dead-lettered with its wait step, and a redrive
resumes it with the recorded signal: no second wait, no second model call."""

from __future__ import annotations

import json
from pathlib import Path

from agentstream import App, Context, Retry
from agentstream.llm.simulator import CallLog, SimulatedProvider, SimulatorConfig
from agentstream.testing import AppHarness
from tests.ops.apps import cli_run, wait_for
from tests.waits.apps import FAST
from tests.waits.test_waits import _is_waiting


def failing_app(url: str, work: Path, *, fixed: bool) -> App:
    app = App(
        "refunds",
        broker=url,
        store=url,
        llm=lambda: SimulatedProvider(SimulatorConfig(latency_ms=0), call_log=work / "calls.db"),
        config=FAST,
    )

    @app.agent(source="refunds", identity=lambda r: r["id"], output="done", retry=Retry(attempts=1))
    async def refunds(ctx: Context, refund: dict) -> dict:
        await ctx.llm(system="Summarise.", user=refund["id"])
        approval = await ctx.wait_for("approval")
        if not fixed:
            raise ValueError("bug after the approval")
        return {"id": refund["id"], "approved": approval["approved"]}

    return app


async def test_a_redriven_event_resumes_after_its_recorded_signal(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    app = failing_app(url, tmp_path, fixed=False)
    async with AppHarness(app) as h:
        await h.produce("refunds", [{"id": "r1"}])
        await wait_for(lambda: _is_waiting(url, "r1"))
        await app.signal("refunds", "r1", "approval", {"approved": True})
        letters: list[dict] = []

        async def dead() -> bool:
            letters[:] = json.loads(await cli_run("dlq", "list", "--store", url, "--json"))
            return bool(letters)

        await wait_for(dead)
    [letter] = letters
    shown = json.loads(await cli_run("dlq", "show", str(letter["id"]), "--store", url, "--json"))
    [wait] = shown["envelope"]["waits"]
    assert wait["name"] == "approval" and wait["result"]["data"] == {"approved": True}
    async with AppHarness(failing_app(url, tmp_path, fixed=True)) as h:
        await cli_run("dlq", "redrive", str(letter["id"]), "--store", url, "--broker", url)
        await wait_for(lambda: len(h.read("done")) == 1)
        [out] = h.read("done")
    assert json.loads(out.value) == {"id": "r1", "approved": True}
    assert len(CallLog.read(tmp_path / "calls.db")) == 1  # the model was not asked again
