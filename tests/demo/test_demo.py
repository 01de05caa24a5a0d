"""The demo runs end to end and tells the truth about both consumers."""

from __future__ import annotations

from rich.console import Console

from agentstream.demo.orchestrator import DemoSettings, render, run_demo


async def test_the_demo_shows_the_naive_consumer_failing_and_agentstream_holding(tmp_path):
    settings = DemoSettings(workdir=tmp_path / "demo", events=80, kills=2, latency_ms=40)
    console = Console(record=True, width=120)
    naive, ours = await run_demo(settings, console)
    render([naive, ours], settings, console)
    # agentstream: one decision and at most one refund per ticket, nothing lost or dropped
    assert (ours.conflicting, ours.duplicate_effects, ours.lost, ours.dropped) == (0, 0, 0, 0)
    assert ours.dead_letters == 2 and ours.kills == 2
    # the naive consumer re-decided duplicates: conflicting decisions, dropped malformed input
    assert naive.conflicting > 0 and naive.dropped == 2 and naive.kills == 2
    assert naive.llm_calls > ours.llm_calls
    assert "duplicate refunds paid" in console.export_text()
