"""Transport failures: a failing commit never drops polled events; a fatal client error stops the worker."""

from __future__ import annotations

import asyncio
import collections

import pytest

import agentstream
from agentstream import backends as backend_registry
from agentstream.config import RuntimeConfig
from agentstream.sqlite_db import sqlite_path
from agentstream.testing import AppHarness
from agentstream.transports.base import TransportFatalError
from agentstream.transports.embedded import EmbeddedTransport
from tests.runtime.helpers import FAST, Ticket

FAILED_COMMITS = collections.Counter[str]()


class CommitFailsFirst(EmbeddedTransport):
    """The real embedded log, whose first five commits fail as a broker outage would."""

    async def commit(self) -> None:
        if FAILED_COMMITS["n"] < 5:
            FAILED_COMMITS["n"] += 1
            raise ConnectionError("coordinator not available (injected)")
        await super().commit()


def flaky_from_url(url: str, config: RuntimeConfig, backends) -> EmbeddedTransport:
    return CommitFailsFirst(
        backends.sqlite(sqlite_path(url)),
        partitions=config.partitions,
        session_timeout_s=config.session_timeout_s,
        heartbeat_s=config.heartbeat_s,
    )


async def test_events_polled_when_a_commit_fails_are_still_processed_in_order(
    tmp_path, monkeypatch
):
    # Given a broker whose first five offset commits fail
    monkeypatch.setitem(backend_registry._TRANSPORTS, "flaky", f"{__name__}:flaky_from_url")
    FAILED_COMMITS.clear()
    db = tmp_path / "log.db"
    app = agentstream.App("commits", broker=f"flaky:///{db}", store=f"sqlite:///{db}", config=FAST)
    seen: dict[str, list[int]] = collections.defaultdict(list)

    @app.agent(source="tickets", key=lambda t: t.customer_id, identity=lambda t: t.ticket_id)
    async def handle(ctx: agentstream.Context, t: Ticket) -> None:
        seen[t.customer_id].append(t.seq)

    tickets = [Ticket(ticket_id=f"t{i}", customer_id=f"c{i % 10}", seq=i) for i in range(200)]
    async with AppHarness(app) as h:
        # When events arrive while those commits fail
        await h.produce("tickets", tickets, key=lambda t: t.customer_id)
        # (a failed commit is retried on the next round; it neither drops the batch polled
        # with it nor stalls consumption in an outage backoff: 5 backoffs would take 12 s)
        await h.wait_drained(timeout_s=8)
    # Then the commits did fail, and still every event was handled once, each key in order
    assert FAILED_COMMITS["n"] == 5
    assert sorted(s for seqs in seen.values() for s in seqs) == list(range(200))
    assert all(seqs == sorted(seqs) for seqs in seen.values())


class PollFailsFatally(EmbeddedTransport):
    """The real embedded log, whose consumer hits a fatal client error on its fifth poll."""

    polls = 0

    async def poll(self, max_records: int, timeout_s: float):
        PollFailsFatally.polls += 1
        if PollFailsFatally.polls >= 5:
            raise TransportFatalError("fatal client error (injected)")
        return await super().poll(max_records, timeout_s)


def fatal_from_url(url: str, config: RuntimeConfig, backends) -> EmbeddedTransport:
    return PollFailsFatally(backends.sqlite(sqlite_path(url)), partitions=config.partitions)


async def test_a_fatal_consumer_error_stops_the_worker_instead_of_retrying_forever(
    tmp_path, monkeypatch
):
    # Given a consumer that hits a fatal client error
    monkeypatch.setitem(backend_registry._TRANSPORTS, "fatal", f"{__name__}:fatal_from_url")
    PollFailsFatally.polls = 0
    db = tmp_path / "log.db"
    app = agentstream.App("fatal", broker=f"fatal:///{db}", store=f"sqlite:///{db}", config=FAST)

    @app.agent(source="tickets")
    async def handle(ctx: agentstream.Context, t: Ticket) -> None:
        return None

    # When the app runs, then it ends with that error (a supervisor restarts the process)
    # rather than backing off and polling a dead client forever
    with pytest.raises(TransportFatalError):
        await asyncio.wait_for(app.run(install_signal_handlers=False), timeout=20)
