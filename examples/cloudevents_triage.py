"""CloudEvents in, CloudEvents out: ticket triage behind an event-driven platform.

Tickets arrive as CloudEvents (binary or structured mode); a producer's retry of one event is
handled once because the identity is the CloudEvents ``id``. Decisions leave as CloudEvents
whose ``id`` is the deterministic output id. Run it on the embedded defaults:

    agentstream produce tickets examples/tickets.jsonl --key customer_id --id ticket_id \
        --cloudevents structured --ce-type com.example.ticket.opened --ce-source /helpdesk
    agentstream run examples.cloudevents_triage:app

With Avro or Protobuf inputs in the Confluent Schema Registry wire format, swap the decoder
(see docs/formats.md)::

    decoder=SchemaRegistryDecoder("avro", url="https://USER:KEY@registry.example.com")
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from agentstream import App, Context
from agentstream.formats import CloudEventsDecoder, CloudEventsEncoder
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig


class Ticket(BaseModel):
    ticket_id: str
    customer_id: str
    text: str


class Triage(BaseModel):
    ticket_id: str
    category: Literal["billing", "shipping", "account", "technical", "other"]
    priority: Literal["low", "normal", "high", "urgent"]
    opened_by: str


class Decision(BaseModel):
    category: Literal["billing", "shipping", "account", "technical", "other"]
    priority: Literal["low", "normal", "high", "urgent"]


app = App("ce-support", llm=SimulatedProvider(SimulatorConfig(latency_ms=50)))


@app.agent(
    source="tickets",
    key=lambda t: t.customer_id,
    output="triage",
    decoder=CloudEventsDecoder(),  # every record must be a CloudEvent; others are dead letters
    encoder=CloudEventsEncoder(type="com.example.ticket.triaged", source="/agents/triage"),
)
async def triage(ctx: Context, ticket: Ticket) -> Triage:
    decision = await ctx.llm.parse(Decision, system="Triage this ticket.", user=ticket.text)
    return Triage(
        ticket_id=ticket.ticket_id,
        category=decision.category,
        priority=decision.priority,
        opened_by=str(ctx.event.attributes.get("source", "")),
    )
