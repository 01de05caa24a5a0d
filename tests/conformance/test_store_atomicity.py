"""Journal invariants that other guarantees rest on, proven fast on every backend.

- Completion and its outbox rows are one transaction: when the outbox insert fails, the event
  is not completed either (a completed event without outputs would never publish them).
- Lease renewal never shortens a lease: an effect's guard extends the claim past the effect's
  deadline, and the routine renewal that follows must keep that.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import sql

from agentstream.event import OutgoingRecord
from agentstream.journal import ClaimStatus, Completion, EventState, Store
from agentstream.journal.postgres import PostgresStore
from agentstream.journal.sqlite import SqliteStore
from tests.conformance.conftest import FakeClock
from tests.conformance.test_store import META
from tests.services import postgres_dsn


def _outbox_fails(store: Store, failing: bool) -> None:
    """Make every insert into the outbox fail (a trigger), or stop doing so."""
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.db.path)
        try:
            conn.execute("DROP TRIGGER IF EXISTS outbox_down")
            if failing:
                conn.execute(
                    "CREATE TRIGGER outbox_down BEFORE INSERT ON as_outbox "
                    "BEGIN SELECT RAISE(ABORT, 'outbox down'); END"
                )
            conn.commit()
        finally:
            conn.close()
        return
    assert isinstance(store, PostgresStore)
    schema = sql.Identifier(store.schema)
    with psycopg.connect(postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS outbox_down ON {}.as_outbox").format(schema))
        if failing:
            conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE FUNCTION {}.outbox_down() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outbox down'; END $$"
                ).format(schema)
            )
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER outbox_down BEFORE INSERT ON {}.as_outbox "
                    "FOR EACH ROW EXECUTE FUNCTION {}.outbox_down()"
                ).format(schema, schema)
            )


async def test_a_completion_whose_outbox_insert_fails_leaves_the_event_uncompleted(make_store):
    # Given a claimed event and an outbox that rejects every insert
    store = await make_store(FakeClock())
    claim = await store.claim("a", "e1", owner="w1", lease_s=10, meta=META)
    _outbox_fails(store, True)
    completion = Completion(outputs=[OutgoingRecord("out", b"k", b"v")], result={"ok": 1})
    # When the worker completes it
    with pytest.raises(Exception, match="outbox down"):
        await store.complete("a", "e1", claim.epoch, completion)
    # Then nothing of the completion was written: still claimed, no outputs
    record = await store.get_event("a", "e1")
    assert record is not None and record.state == EventState.CLAIMED
    assert await store.outbox("a", "e1") == []
    # and once the outbox works again the same completion goes through, outputs included
    _outbox_fails(store, False)
    await store.complete("a", "e1", claim.epoch, completion)
    record = await store.get_event("a", "e1")
    assert record is not None and record.state == EventState.COMPLETED
    assert [r.record.value for r in await store.outbox("a", "e1")] == [b"v"]


async def test_renewal_extends_a_lease_but_never_shortens_it(make_store):
    # Given a claim whose lease an effect's guard extended to 60 s
    clock = FakeClock()
    store = await make_store(clock)
    claim = await store.claim("a", "e1", owner="w1", lease_s=2, meta=META)
    assert await store.renew("a", [("e1", claim.epoch)], 60) == set()
    # When the routine renewal asks for 2 s again
    assert await store.renew("a", [("e1", claim.epoch)], 2) == set()
    clock.advance(30)
    # Then the claim still holds 30 s later: nobody else can take it
    other = await store.claim("a", "e1", owner="w2", lease_s=2, meta=META)
    assert other.status == ClaimStatus.BUSY
    clock.advance(31)
    assert (await store.claim("a", "e1", owner="w2", lease_s=2, meta=META)).status == (
        ClaimStatus.CLAIMED
    )
