"""Effects go through the intent ledger: never blindly repeated after a crash."""

from __future__ import annotations

from agentstream import Context, FailureClass, Retry
from agentstream.journal import StepStatus
from agentstream.journal.sqlite import SqliteStore
from agentstream.testing import AppHarness
from tests.runtime.helpers import Outcomes, Ticket, make_app


class Payments:
    """A downstream API that counts every call and remembers refunds by key."""

    def __init__(self, fail_after_doing: int = 0, fail_before_doing: int = 0) -> None:
        self.calls: list[str] = []
        self.done: dict[str, str] = {}
        self.fail_after_doing = fail_after_doing
        self.fail_before_doing = fail_before_doing

    def refund(self, cents: int, idempotency_key: str) -> str:
        self.calls.append(idempotency_key)
        if self.fail_before_doing:
            self.fail_before_doing -= 1
            raise ConnectionError("connection reset before the request was sent")
        refund_id = f"r{len(self.done) + 1}"
        self.done.setdefault(idempotency_key, refund_id)
        if self.fail_after_doing:
            self.fail_after_doing -= 1
            raise ConnectionError("connection reset after the refund was made")
        return self.done[idempotency_key]

    def lookup(self, idempotency_key: str) -> str | None:
        return self.done.get(idempotency_key)


def refund_agent(app, payments: Payments, **effect_options):
    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        output="out",
        dead_letter="dlq",
        retry=Retry(attempts=4, backoff_initial=0.01),
    )
    async def refunds(ctx: Context, t: Ticket) -> dict:
        refund_id = await ctx.effect(
            "refund", payments.refund, 500, idempotency_key=ctx.key("refund"), **effect_options
        )
        return {"refund_id": refund_id}

    return refunds


async def events(db_path, event_id="T1"):
    store = SqliteStore(db_path)
    await store.open()
    try:
        return await store.get_event("refunds", event_id), await store.steps("refunds", event_id)
    finally:
        await store.close()


async def test_an_effect_whose_record_was_lost_is_reconciled_not_repeated(db_url, db_path):
    # Given a refund that happened downstream but whose result never reached the journal
    payments = Payments(fail_after_doing=1)
    app = make_app(db_url)
    refund_agent(app, payments, reconcile=payments.lookup)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    # Then the retry asked the downstream API instead of refunding again
    assert len(payments.calls) == 1 and len(payments.done) == 1
    record, steps = await events(db_path)
    assert record.result == {"refund_id": "r1"}
    assert steps[0].status == StepStatus.DONE and steps[0].meta == {"reconciled": True}
    assert steps[0].idempotency_key == payments.calls[0]


async def test_an_effect_that_never_happened_is_executed_once_more_after_reconcile(db_url, db_path):
    payments = Payments(fail_before_doing=1)
    app = make_app(db_url)
    refund_agent(app, payments, reconcile=payments.lookup)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    # Both calls carried the same idempotency key; one refund exists
    assert len(payments.calls) == 2 and len(set(payments.calls)) == 1
    assert len(payments.done) == 1


async def test_an_idempotent_effect_is_retried_with_the_same_key(db_url):
    payments = Payments(fail_after_doing=1)
    app = make_app(db_url)
    refund_agent(app, payments, idempotent=True)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    assert len(payments.calls) == 2 and len(set(payments.calls)) == 1
    assert len(payments.done) == 1


async def test_an_effect_of_unknown_outcome_is_dead_lettered_not_repeated(db_url, db_path):
    # Given an effect with neither reconcile nor idempotency, interrupted after it happened
    payments = Payments(fail_after_doing=1)
    outcomes = Outcomes()
    app = make_app(db_url, middleware=[outcomes])
    refund_agent(app, payments)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
        dlq = h.read("dlq")
    # Then it was not called again, and the dead letter says why, with the key it issued
    assert len(payments.calls) == 1
    assert outcomes.counts["dead_lettered"] == 1
    assert outcomes.failures[-1].failure_class == FailureClass.EFFECT_UNKNOWN
    record, steps = await events(db_path)
    assert record.state == "dead" and steps[0].status == StepStatus.UNKNOWN
    store = SqliteStore(db_path)
    await store.open()
    try:
        [letter] = await store.dead_letters(agent="refunds")
    finally:
        await store.close()
    assert letter.envelope["idempotency_keys"] == [payments.calls[0]]
    assert letter.envelope["effects"][0]["status"] == "unknown"
    assert len(dlq) == 1


async def test_idempotency_keys_depend_only_on_the_event_and_the_step_name(db_url):
    app = make_app(db_url)
    keys: list[tuple[int, str, str]] = []

    @app.agent(
        source="tickets",
        identity=lambda t: t.ticket_id,
        retry=Retry(attempts=3, backoff_initial=0.01),
    )
    async def keyed(ctx: Context, t: Ticket) -> None:
        keys.append((ctx.attempt, ctx.key("refund"), ctx.key("email")))
        if ctx.attempt == 1:
            raise TimeoutError("first attempt times out")

    async with AppHarness(app) as h:
        await h.produce(
            "tickets",
            [Ticket(ticket_id="T1", customer_id="c"), Ticket(ticket_id="T2", customer_id="c")],
        )
        await h.wait_drained()
    by_attempt = {(a, r, e) for a, r, e in keys}
    assert len(keys) == 4
    first = [k for k in keys if k[0] == 1]
    second = [k for k in keys if k[0] == 2]
    assert sorted(k[1:] for k in first) == sorted(k[1:] for k in second)
    assert len({k[1] for k in by_attempt}) == 2  # one refund key per event
    assert all(k[1] != k[2] for k in keys)


async def test_the_retry_of_an_effect_that_raised_does_not_wait_out_its_deadline(db_url):
    # Given an effect that fails once (its call returned an error, so it is not running) and a
    # deadline of 30 s, the time a takeover would have to wait for a call that may still run
    import time

    payments = Payments(fail_before_doing=1)
    called_at: list[float] = []
    original = payments.refund

    def refund(cents: int, idempotency_key: str) -> str:
        called_at.append(time.monotonic())
        return original(cents, idempotency_key)

    payments.refund = refund  # type: ignore[method-assign]
    app = make_app(db_url)
    refund_agent(app, payments, reconcile=payments.lookup, timeout=30.0)
    async with AppHarness(app) as h:
        await h.produce("tickets", [Ticket(ticket_id="T1", customer_id="c")])
        await h.wait_drained()
    # Then the retry reconciled and called again at once, not after the deadline
    assert len(called_at) == 2 and len(payments.done) == 1
    assert called_at[1] - called_at[0] < 10.0, called_at[1] - called_at[0]
