"""Strict ordering: later events of a key are parked behind its dead letter, then resumed."""

from __future__ import annotations

import json

from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.ops.apps import cli_run, effects, make_app, tickets, wait_for

CAROL = [("c1", "carol", True), ("c2", "carol", False), ("c3", "carol", False)]
OTHERS = [("d1", "dave", False), ("e1", "eve", False), ("d2", "dave", False)]


def order(tmp_path, customer_prefix: str) -> list[str]:
    return [line for line, _ in effects(tmp_path / "effects.log") if line[0] == customer_prefix]


async def parked_count(url: str) -> int:
    store = SqliteStore(url.removeprefix("sqlite:///"))
    await store.open()
    try:
        return (await store.counts("triage"))["parked"]
    finally:
        await store.close()


async def test_parked_keys_resume_in_order_after_redrive(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    # Given a strict agent with a bug that kills c1; c2, c3 of the same customer follow
    async with AppHarness(make_app(url, tmp_path, fixed=False, ordering="strict")) as h:
        await h.produce("tickets", tickets(*CAROL[:2], *OTHERS, CAROL[2]), key=lambda t: t.customer)
        # Then other keys complete, carol's later events are held, and offsets still advance
        await h.wait_drained()
        assert sorted(order(tmp_path, "d") + order(tmp_path, "e")) == ["d1", "d2", "e1"]
        assert order(tmp_path, "c") == ["c1"]  # c1's effect ran before its bug; c2, c3 did not
        assert await parked_count(url) == 2
        lags = [await w.transport.lag() for w in h.workers]
        assert lags and all(v == 0 for lag in lags for v in lag.values())
    [letter] = json.loads(await cli_run("dlq", "list", "--store", url, "--json"))
    assert letter["event_id"] == "c1"

    # When the fixed agent runs, a new carol event arrives, and c1 is redriven
    async with AppHarness(make_app(url, tmp_path, fixed=True, ordering="strict")) as h:
        await h.produce("tickets", tickets(("c4", "carol", False)), key=lambda t: t.customer)
        await wait_for(lambda: parked_count(url))  # c4 joins the parked queue, in order
        assert order(tmp_path, "c") == ["c1"]
        await cli_run("dlq", "redrive", str(letter["id"]), "--store", url, "--broker", url)
        await h.produce("tickets", tickets(("c5", "carol", False)), key=lambda t: t.customer)
        # Then every carol event runs exactly once, in arrival order, after c1
        await wait_for(lambda: len(order(tmp_path, "c")) == 5)
        await h.wait_drained()
        assert order(tmp_path, "c") == ["c1", "c2", "c3", "c4", "c5"]
        assert await parked_count(url) == 0
        carol = [m for m in h.read("triage") if m.key == b"carol"]
        assert [m.header("agentstream-event-id") for m in carol] == [
            b"c1",
            b"c2",
            b"c3",
            b"c4",
            b"c5",
        ]


async def test_discarding_the_dead_letter_releases_the_parked_key_in_order(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    async with AppHarness(make_app(url, tmp_path, fixed=False, ordering="strict")) as h:
        await h.produce("tickets", tickets(*CAROL), key=lambda t: t.customer)
        await h.wait_drained()
        await wait_for(lambda: parked_count(url))
        assert order(tmp_path, "c") == ["c1"]
        await cli_run("dlq", "discard", "--all", "--key", "carol", "--store", url)
        await wait_for(lambda: len(order(tmp_path, "c")) == 3)
        assert order(tmp_path, "c") == ["c1", "c2", "c3"]
    statuses = json.loads(await cli_run("dlq", "list", "--store", url, "--json"))
    assert [(d["event_id"], d["status"]) for d in statuses] == [("c1", "discarded")]


async def test_without_strict_ordering_a_dead_letter_does_not_hold_its_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    async with AppHarness(make_app(url, tmp_path, fixed=False, ordering="key")) as h:
        await h.produce("tickets", tickets(*CAROL), key=lambda t: t.customer)
        await h.wait_drained()
    assert order(tmp_path, "c") == ["c1", "c2", "c3"]
    assert await parked_count(url) == 0
