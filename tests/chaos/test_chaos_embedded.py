"""Chaos on the embedded defaults: SIGKILL the worker at chosen points and at random."""

from __future__ import annotations

import os

import pytest

from agentstream.outputs import EVENT_ID_HEADER
from agentstream.sqlite_db import sqlite_path
from agentstream.transports.embedded import read_topic
from tests.chaos.harness import KILL_POINTS, ChaosPlan, run_chaos, verify

SOAK = os.environ.get("AGENTSTREAM_SOAK") == "1"


def embedded_outputs(plan: ChaosPlan) -> list[tuple[str, bytes]]:
    return [
        ((m.header(EVENT_ID_HEADER) or b"").decode(), m.value)
        for m in read_topic(sqlite_path(plan.broker), plan.output)
    ]


async def test_killing_the_worker_anywhere_leaves_one_decision_and_one_effect_per_event(tmp_path):
    # Given a stream of 1,000 tickets with 12% producer duplicates and a model that answers
    # randomly, and a worker that is SIGKILLed before the LLM call, after it, between an effect
    # and its record, after completion before the commit, and at random times
    url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    plan = ChaosPlan(
        broker=url,
        store=url,
        workdir=tmp_path,
        events=1000,
        random_kills=5,
        chosen_per_point=2,
        feed_s=6.0,
        latency_ms=25.0,
    )
    # When it is restarted after every kill until the stream is done
    stream, facts = await run_chaos(plan)
    report = await verify(plan, stream, facts, embedded_outputs(plan))
    print("\nchaos (embedded):", report.line())
    # Then every invariant held (verify raises otherwise), and the kills really happened
    # (a random kill can, rarely, pre-empt one planned point; each point must still fire)
    assert set(report.points_fired) == set(KILL_POINTS)
    assert report.chosen_kills >= 6
    assert report.random_kills == 5
    assert report.duplicates >= 100
    assert report.completed + report.dead == 1000


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="set AGENTSTREAM_SOAK=1 for the long chaos run")
async def test_a_long_chaos_run_with_two_workers_keeps_every_invariant(tmp_path):
    url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    plan = ChaosPlan(
        broker=url,
        store=url,
        workdir=tmp_path,
        events=5000,
        workers=2,
        random_kills=25,
        chosen_per_point=5,
        feed_s=40.0,
        latency_ms=30.0,
        deadline_s=900,
    )
    stream, facts = await run_chaos(plan)
    report = await verify(plan, stream, facts, embedded_outputs(plan))
    print("\nchaos soak (embedded):", report.line())
    assert report.random_kills == 25
