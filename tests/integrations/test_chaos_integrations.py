"""Chaos through the integrations: SDK and framework agents SIGKILLed at random and at points.

For plain AsyncOpenAI, the Anthropic SDK, PydanticAI and the OpenAI Agents SDK, the same refund
agent (tests/apps/integrations_app.py) runs in worker processes against the simulator over real
HTTP; workers are SIGKILLed at random, after a model answer (received, not yet journaled),
inside the refund tool (after the money moved), after a tool's result is journaled and after
completion. The harness checks every event completed once with one decision, each refund
happened exactly once (counted by the tool), and no recorded model call was sent again
(counted at the simulator).
"""

from __future__ import annotations

import pytest

from agentstream.llm.openai_provider import idempotency_key
from agentstream.llm.simulator import SimulatorConfig, SimulatorServer
from tests.chaos.harness import KILL_POINTS, ChaosPlan, run_chaos, verify
from tests.chaos.test_chaos_embedded import embedded_outputs


@pytest.mark.parametrize("framework", ["openai", "anthropic", "pydantic_ai", "agents"])
async def test_killing_an_sdk_or_framework_agent_anywhere_leaves_one_decision_and_effect(
    tmp_path, framework
):
    url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    config = SimulatorConfig(latency_ms=10.0, latency_sigma=0.5, tool_call_rate=1.0)
    with SimulatorServer(config, call_log=tmp_path / "calls.db", record=False) as sim:
        plan = ChaosPlan(
            broker=url,
            store=url,
            workdir=tmp_path,
            events=300,
            keys=40,
            workers=2,
            random_kills=2,
            kill_interval_s=(3.0, 5.0),
            chosen_per_point=1,
            feed_s=3.0,
            deadline_s=180.0,
            app="tests.apps.integrations_app:app",
            extra_points=("after_tool",),
            extra_env={"CHAOS_FRAMEWORK": framework, "CHAOS_SIM_URL": sim.anthropic_url},
        )
        stream, facts = await run_chaos(plan)
        report = await verify(plan, stream, facts, embedded_outputs(plan), sim_key=idempotency_key)
    print(f"\nchaos ({framework}):", report.line())
    assert set(report.points_fired) == {*KILL_POINTS, "after_tool"}
    assert report.random_kills == 2
    assert report.duplicates >= 30
    assert report.completed == 300 and report.dead == 0
    assert report.llm_steps >= 600  # several model calls per event
    assert report.refunds > 50
