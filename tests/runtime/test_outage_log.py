"""Outage log lines: one when it starts, one when it is over, even when the journal flaps."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from agentstream.journal.outage import OutageLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_flapping_journal_is_one_outage(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = OutageLog("journal", logging.getLogger("t"), every_s=30.0, clock=clock)
    full = sqlite3.OperationalError("database or disk is full")
    caplog.set_level(logging.WARNING, logger="t")
    # Given a nearly full disk: for 15 s, every other write fails
    for i in range(60):
        clock.now += 0.25
        if i % 2:
            outage.ok()
        else:
            outage.failed(full)
    # When writes then keep succeeding
    for _ in range(12):
        clock.now += 0.25
        outage.ok()
    # Then the log has one line for the start and one for the end, not one per flap
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "journal unavailable" in lines[0]
    assert lines[1].startswith("journal back after 16s (30 failed tries)")
    assert not outage.down
