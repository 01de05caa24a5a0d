"""The examples run as documented."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from agentstream.testing import AppHarness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_support_triage_example_decides_every_ticket_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("examples.support_triage", None)
    module = importlib.import_module("examples.support_triage")
    module.app.broker_url = module.app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    tickets = [json.loads(line) for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()]
    async with AppHarness(module.app) as h:
        await h.produce(
            "tickets",
            tickets * 2,
            key=lambda t: t["customer_id"],
            headers=lambda t: {"id": t["ticket_id"]},
        )
        await h.wait_drained()
        outputs = h.read("triage")
    assert len(outputs) == len(tickets)
    refunds = module.payments.conn.execute("SELECT COUNT(*) FROM refunds").fetchone()[0]
    decided = sum(1 for m in outputs if json.loads(m.value)["refund"])
    assert refunds == decided


async def test_the_fraud_review_example_replays_its_tool_loop_from_the_journal(
    tmp_path, monkeypatch
):
    from agentstream.testing import run_agent

    monkeypatch.chdir(tmp_path)
    sys.modules.pop("examples.fraud_review", None)
    module = importlib.import_module("examples.fraud_review")
    module.app.broker_url = module.app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    payment = {
        "payment_id": "P1",
        "account_id": "A1",
        "amount_cents": 990_000,
        "merchant": "electronics",
        "country": "BR",
    }
    first = await run_agent(module.app, "review", payment)
    calls = module.app.provider().simulator.stats["requests"]
    again = await run_agent(module.app, "review", payment, offset=1)
    assert first.state == "completed" and again.outcome == "duplicate"
    assert again.result == first.result
    assert module.app.provider().simulator.stats["requests"] == calls
    kinds = [s.kind for s in first.steps]
    assert kinds.count("llm") >= 2 and kinds[-1] in ("llm", "effect")


async def test_the_llm_gateway_example_triages_every_ticket_over_http_within_its_limits(
    tmp_path, monkeypatch
):
    from agentstream.llm.simulator import SimulatorConfig, SimulatorServer

    monkeypatch.chdir(tmp_path)
    # The example admits 1,200 calls a minute (a burst of 60, then 19 a second), which fits
    # the simulator's 100 calls in any 2 s: no call may be rejected.
    with SimulatorServer(SimulatorConfig(seed=3, latency_ms=20, rpm=100, window_s=2.0)) as sim:
        monkeypatch.setenv("OPENAI_BASE_URL", sim.url)
        monkeypatch.setenv("LLM_RPM", "1200")
        sys.modules.pop("examples.llm_gateway", None)
        module = importlib.import_module("examples.llm_gateway")
        module.app.broker_url = module.app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
        tickets = [
            json.loads(line) for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()
        ]
        async with AppHarness(module.app) as h:
            await h.produce("tickets", tickets, key=lambda t: t["customer_id"])
            await h.wait_drained(timeout_s=240)
            outputs = h.read("triage")
    assert len(outputs) == len(tickets)
    for m in outputs:
        module.Triage.model_validate_json(m.value)
    assert [c.status for c in sim.calls].count(429) == 0
    assert any("tool_calls" in str(c.body["messages"]) for c in sim.calls)


async def test_the_cloudevents_example_answers_each_event_once_as_a_cloudevent(
    tmp_path, monkeypatch
):
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.formats.json import JSONFormat

    from agentstream.cli.produce import CloudEventsMode, CloudEventsOptions, record_from_line

    monkeypatch.chdir(tmp_path)
    sys.modules.pop("examples.cloudevents_triage", None)
    module = importlib.import_module("examples.cloudevents_triage")
    module.app.broker_url = module.app.store_url = f"sqlite:///{tmp_path / 'agentstream.db'}"
    options = CloudEventsOptions(CloudEventsMode.STRUCTURED, "ticket.opened", "/helpdesk")
    lines = (EXAMPLES / "tickets.jsonl").read_text().splitlines()
    records = [
        record_from_line(
            "tickets",
            line,
            key_field="customer_id",
            id_field="ticket_id",
            envelope=False,
            cloudevents=options,
        )
        for line in lines
    ]
    async with AppHarness(module.app) as h:
        transport = module.app.backends().transport()
        await transport.start()
        try:
            await transport.produce(records * 2)  # every event sent twice
        finally:
            await transport.close()
        await h.wait_drained()
        outputs = h.read("triage")
    events = [
        ce_kafka.from_kafka(ce_kafka.KafkaMessage(dict(m.headers), m.key, m.value), JSONFormat())
        for m in outputs
    ]
    assert len(events) == len(lines)
    assert {e.get_type() for e in events} == {"com.example.ticket.triaged"}
    assert {json.loads(m.value)["opened_by"] for m in outputs} == {"/helpdesk"}


def test_the_fraud_review_docstrings_input_is_payments_the_agent_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("examples.fraud_review", None)
    module = importlib.import_module("examples.fraud_review")
    assert "examples/payments.jsonl" in module.__doc__
    lines = (EXAMPLES / "payments.jsonl").read_text().splitlines()
    payments = [module.Payment.model_validate_json(line) for line in lines]
    assert len({p.payment_id for p in payments}) == len(payments) >= 10
