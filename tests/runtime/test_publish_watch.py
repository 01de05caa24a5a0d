"""The publish watch: unhealthy, then an exit, when outputs never leave; healthy again after."""

from __future__ import annotations

import pytest

from agentstream.runtime.publish_watch import PublishStalled, PublishWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_round_stuck_on_the_broker_makes_the_worker_unhealthy_then_exit() -> None:
    clock = Clock()
    watch = PublishWatch(unhealthy_after_s=10, exit_after_s=30, clock=clock, wall=clock)
    watch.backlog(5, clock.now)
    watch.round_started()  # the producer blocks on a stopped broker
    clock.now += 11
    assert not watch.healthy  # counted from the start of the round, not its timeout
    watch.check()
    watch.nothing_taken()  # the round ends with nothing taken
    watch.round_ended()
    clock.now += 20
    with pytest.raises(PublishStalled):
        watch.check()


def test_anything_published_or_an_empty_outbox_ends_the_stall() -> None:
    clock = Clock()
    watch = PublishWatch(unhealthy_after_s=10, exit_after_s=30, clock=clock, wall=clock)
    watch.nothing_taken()
    clock.now += 15
    assert not watch.healthy
    watch.published()
    assert watch.healthy and watch.stalled_s == 0
    watch.nothing_taken()
    clock.now += 15
    watch.backlog(0, None)
    assert watch.healthy
    snap = watch.snapshot()
    assert (snap.pending, snap.stalled_s, snap.healthy) == (0, 0.0, True)
