"""Dead letters: list, show, redrive after a fix, and the no-op redrive of a completed event."""

from __future__ import annotations

import json
from pathlib import Path

from agentstream.journal.sqlite import SqliteStore
from agentstream.outputs import EVENT_ID_HEADER
from agentstream.testing import AppHarness
from agentstream.transports.embedded import read_topic
from tests.ops.apps import calls, cli_run, effects, make_app, tickets


def outputs_of(h: AppHarness, identity: str) -> list[bytes]:
    return [m.value for m in h.read("triage") if m.header(EVENT_ID_HEADER) == identity.encode()]


async def dead_letter_ids(db: Path) -> list[dict]:
    out = await cli_run("dlq", "list", "--store", f"sqlite:///{db}", "--json")
    return json.loads(out)


async def test_a_redrive_after_a_fix_completes_the_event_exactly_once(tmp_path):
    db = tmp_path / "as.db"
    url = f"sqlite:///{db}"
    batch = tickets(("t1", "alice", False), ("t2", "bob", True), ("t3", "carol", False))
    # Given an agent with a bug, identity from source coordinates (no id header, no function)
    async with AppHarness(make_app(url, tmp_path, fixed=False, identity_fn=False)) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.wait_drained()
    [letter] = await dead_letter_ids(db)
    identity = letter["event_id"]
    assert letter["failure_class"] == "agent_error" and letter["status"] == "dead"
    assert identity.startswith("tickets/") and letter["key"] == "bob"
    assert len(calls(tmp_path / "calls.db", identity)) == 1
    # the dead-letter topic got the original bytes, with the context in headers
    [dlq] = read_topic(db, "tickets.dlq")
    [original] = [m for m in read_topic(db, "tickets") if m.coordinates == identity]
    assert (dlq.key, dlq.value) == (original.key, original.value)
    assert dlq.header("kafka_dlt-original-topic") == b"tickets"
    assert dlq.header("__connect.errors.offset") == str(original.offset).encode()
    assert dlq.header("__connect.errors.exception.class.name") == b"builtins.ValueError"
    assert dlq.header("agentstream-dlq-event-id") == identity.encode()
    shown = json.loads(await cli_run("dlq", "show", str(letter["id"]), "--store", url, "--json"))
    assert [s["kind"] for s in shown["steps"]] == ["llm", "effect"]
    assert shown["envelope"]["idempotency_keys"] == [shown["steps"][1]["idempotency_key"]]
    assert shown["envelope"]["llm_attempts"][0]["output"] == shown["steps"][0]["result"]["text"]

    # When the fixed agent runs and the dead letter is redriven (mode resume)
    async with AppHarness(make_app(url, tmp_path, fixed=True, identity_fn=False)) as h:
        out = await cli_run("dlq", "redrive", str(letter["id"]), "--store", url, "--broker", url)
        assert "1 of 1 dead letter(s) redriven, 1 record(s) published" in out
        await h.wait_drained()
        # Then the event completed once: one output, no new model call, the effect not repeated
        assert len(outputs_of(h, identity)) == 1
        assert len(calls(tmp_path / "calls.db", identity)) == 1
        assert [line for line, _ in effects(tmp_path / "effects.log")].count("t2") == 1
        store = SqliteStore(db)
        await store.open()
        try:
            event = await store.get_event("triage", identity)
            assert event is not None and event.state == "completed"
            assert (await store.get_dead_letter(letter["id"])).status == "resolved"
        finally:
            await store.close()

        # When the completed event is redriven again, nothing happens
        before = (h.read("triage"), h.read("tickets"))
        out = await cli_run("dlq", "redrive", str(letter["id"]), "--store", url, "--broker", url)
        assert "0 of 1 dead letter(s) redriven" in out
        await h.wait_drained()
        assert (h.read("triage"), h.read("tickets")) == before
        assert len(calls(tmp_path / "calls.db", identity)) == 1
        assert [line for line, _ in effects(tmp_path / "effects.log")].count("t2") == 1


async def test_a_fresh_redrive_starts_over_with_the_same_identity_and_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    async with AppHarness(make_app(url, tmp_path, fixed=False)) as h:
        await h.produce("tickets", tickets(("t9", "dan", True)), key=lambda t: t.customer)
        await h.wait_drained()
    [letter] = await dead_letter_ids(tmp_path / "as.db")
    async with AppHarness(make_app(url, tmp_path, fixed=True)) as h:
        await cli_run("dlq", "redrive", "--all", "--mode", "fresh", "--store", url, "--broker", url)
        await h.wait_drained()
        assert len(outputs_of(h, "t9")) == 1
    # the model was asked again, and the effect ran again under the same idempotency key
    assert len(calls(tmp_path / "calls.db", "t9")) == 2
    lines = [e for e in effects(tmp_path / "effects.log") if e[0] == "t9"]
    assert len(lines) == 2 and lines[0][1] == lines[1][1]
    assert letter["event_id"] == "t9"


async def test_a_live_duplicate_racing_a_redrive_runs_the_event_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    bad = tickets(("t5", "erin", True))
    async with AppHarness(make_app(url, tmp_path, fixed=False)) as h:
        await h.produce("tickets", bad, key=lambda t: t.customer)
        await h.wait_drained()
    [letter] = await dead_letter_ids(tmp_path / "as.db")
    async with AppHarness(make_app(url, tmp_path, fixed=True)) as h:
        # the producer re-sends the same ticket while the operator redrives it
        await h.produce("tickets", bad, key=lambda t: t.customer)
        await cli_run("dlq", "redrive", str(letter["id"]), "--store", url, "--broker", url)
        await h.produce("tickets", bad, key=lambda t: t.customer)
        await h.wait_drained()
        assert len(outputs_of(h, "t5")) == 1
    assert len(calls(tmp_path / "calls.db", "t5")) == 1
    assert [line for line, _ in effects(tmp_path / "effects.log")].count("t5") == 1


async def test_dead_letters_are_listed_by_filters_and_discarded(tmp_path):
    url = f"sqlite:///{tmp_path / 'as.db'}"
    batch = tickets(("a1", "ann", True), ("b1", "ben", True), ("c1", "cat", False))
    async with AppHarness(make_app(url, tmp_path, fixed=False)) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.wait_drained()
    assert {d["event_id"] for d in await dead_letter_ids(tmp_path / "as.db")} == {"a1", "b1"}
    out = await cli_run(
        "dlq", "list", "--key", "ben", "--class", "agent_error", "--store", url, "--json"
    )
    assert [d["event_id"] for d in json.loads(out)] == ["b1"]
    out = await cli_run(
        "dlq", "list", "--since", "1h", "--class", "semantic", "--store", url, "--json"
    )
    assert json.loads(out) == []
    out = await cli_run("dlq", "discard", "--all", "--key", "ben", "--store", url)
    assert "1 of 1 dead letter(s) discarded" in out
    statuses = {d["event_id"]: d["status"] for d in await dead_letter_ids(tmp_path / "as.db")}
    assert statuses == {"a1": "dead", "b1": "discarded"}
    table = await cli_run("journal", "list", "--state", "dead", "--store", url)
    assert "a1" in table and "b1" in table and "c1" not in table
    shown = json.loads(await cli_run("journal", "show", "c1", "--store", url, "--json"))
    assert shown["state"] == "completed" and shown["message"]["value_text"].startswith("{")
    assert [s["kind"] for s in shown["steps"]] == ["llm", "effect"]


async def test_a_redriven_event_that_fails_again_gets_a_new_dead_letter_and_record(tmp_path):
    db = tmp_path / "as.db"
    url = f"sqlite:///{db}"
    async with AppHarness(make_app(url, tmp_path, fixed=False)) as h:
        await h.produce("tickets", tickets(("t8", "fay", True)), key=lambda t: t.customer)
        await h.wait_drained()
        [first] = await dead_letter_ids(db)
        # the fix did not work: the redriven event fails again
        await cli_run("dlq", "redrive", str(first["id"]), "--store", url, "--broker", url)
        await h.wait_drained()
    letters = {d["id"]: d["status"] for d in await dead_letter_ids(db)}
    assert letters[first["id"]] == "superseded" and sorted(letters.values()) == [
        "dead",
        "superseded",
    ]
    assert len(read_topic(db, "tickets.dlq")) == 2
    assert len(calls(tmp_path / "calls.db", "t8")) == 1  # resumed: the model was not asked again
