"""A failing offset commit (a coordinator failover, a broker blip) never drops polled events."""

from __future__ import annotations

import collections

import agentstream
from agentstream import backends as backend_registry
from agentstream.backends import sqlite_path
from agentstream.config import RuntimeConfig
from agentstream.testing import AppHarness
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
