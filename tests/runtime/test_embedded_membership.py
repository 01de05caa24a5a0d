"""Embedded log membership: a member that could not heartbeat does not evict its peers for it.

When the journal file cannot be written (a full disk, a long stall) every member's heartbeat
fails alike; the first one to write again must not find the others "silent for longer than the
session timeout" and take their partitions, which would redeliver their in-flight events (a
second claim, and a model answer bought again). Seen in the full-disk outage test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentstream.event import TopicPartition
from agentstream.transports.embedded import EmbeddedTransport

TIMEOUT_S = 0.6


class Listener:
    async def on_assigned(self, parts: list[TopicPartition]) -> None:
        pass

    async def on_revoked(self, parts: list[TopicPartition]) -> None:
        pass


async def member(path: Path, name: str) -> EmbeddedTransport:
    log = EmbeddedTransport(
        path, partitions=4, session_timeout_s=TIMEOUT_S, heartbeat_s=0.05, member_id=name
    )
    await log.start()
    await log.subscribe(["work"], "group", Listener())
    return log


async def test_a_member_back_from_its_own_silence_keeps_its_silent_peer(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    a, b = await member(path, "a"), await member(path, "b")
    try:
        await a.poll(10, 0.1)
        await b.poll(10, 0.1)
        assert len(a.assignment()) == 2 and len(b.assignment()) == 2
        # Given both members silent (neither could heartbeat) for over the session timeout
        await asyncio.sleep(TIMEOUT_S * 2.5)
        # When one of them heartbeats again first
        await a.poll(10, 0.0)
        # Then it still shares the partitions: its peer was no more silent than itself
        assert len(a.assignment()) == 2
        # And a peer that stays silent is dropped once the member has been heartbeating again
        await a.poll(10, TIMEOUT_S * 2)
        assert len(a.assignment()) == 4
    finally:
        await a.close()
        await b.close()
