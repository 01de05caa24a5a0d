"""Recorded and shadow replay, through the live executor.

Replay builds the same :class:`~agentstream.runtime.executor.Executor` a worker uses and feeds
it events from the journal (:mod:`agentstream.replay.source`) instead of a transport, with a
:class:`~agentstream.replay.recorded_journal.ReplayJournal` in place of the live journal:

* **recorded** mode hands the executor each event's recorded steps and no model: outputs are
  rebuilt from the journal and compared byte for byte with the recorded outbox (topic, key,
  value, headers other than per-execution trace context, dedupe id). A divergent step fails
  that event's replay instead of executing. Zero model calls, zero effects.
* **shadow** mode runs a candidate agent (another app, prompt, model or code) on the recorded
  events: steps whose request matches a recorded one are answered from the journal, other model
  calls go to the candidate's provider, effects are answered or suppressed and never executed.
  The comparison is the divergence report (:mod:`agentstream.replay.report`); the results are
  stored under the run's id, apart from live state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.agent import AgentSpec
from agentstream.app import App
from agentstream.codec import to_jsonable
from agentstream.event import Event, OutgoingRecord
from agentstream.formats.base import bind_to_broker
from agentstream.journal.records import EventRecord, ShadowResult, ShadowRun, StepKind, StepRecord
from agentstream.journal.store import Store
from agentstream.llm.base import LLMProvider
from agentstream.middleware import Middleware, MiddlewareStack, ProcessOutcome
from agentstream.replay.recorded_journal import JournalAnswers, NothingRecorded, ReplayJournal
from agentstream.replay.source import (
    RecordedPage,
    Selection,
    rebuild,
    recorded_events,
    recorded_pages,
)
from agentstream.runtime.executor import Executor

TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
"""Headers set per execution (trace context); not part of the byte-for-byte comparison."""


class _CountCalls(Middleware):
    """Counts model calls actually made during replay (must stay zero in recorded mode)."""

    def __init__(self) -> None:
        self.calls = 0

    async def after_process(self, inp: ProcessOutcome) -> None:
        self.calls += inp.llm_calls


@dataclass(frozen=True)
class RecordedResult:
    """One event of a recorded replay.

    Attributes:
        event_id: The event.
        key: Its ordering key.
        status: ``identical``, ``different``, ``failed`` or ``skipped``.
        detail: What differed, why it failed or was skipped.
        outputs: Outputs rebuilt.
    """

    event_id: str
    key: str | None
    status: str
    detail: str = ""
    outputs: int = 0


@dataclass
class RecordedReport:
    """The outcome of a recorded replay."""

    agent: str
    results: list[RecordedResult] = field(default_factory=list)
    model_calls: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """Events with a status."""
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        """Every replayed event reproduced its outputs and no model was called."""
        return self.model_calls == 0 and all(
            r.status in ("identical", "skipped") for r in self.results
        )


def comparable(record: OutgoingRecord) -> tuple[Any, ...]:
    """The parts of an output that must replay byte for byte."""
    headers = tuple((k, v) for k, v in record.headers if k not in TRACE_HEADERS)
    return (record.topic, record.key, record.value, headers, record.dedupe_id)


def _output_rows(agent: str, event_id: str, rows: Sequence[OutgoingRecord]) -> list[OutgoingRecord]:
    prefix = f"{agent}:{event_id}:"
    return [r for r in rows if r.dedupe_id is not None and r.dedupe_id.startswith(prefix)]


async def _bounded(
    items: Sequence[EventRecord], fn: Callable[[EventRecord], Awaitable[Any]], concurrency: int
) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(item: EventRecord) -> Any:
        async with gate:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def replay_recorded(
    app: App,
    agent: str,
    store: Store,
    selection: Selection | None = None,
    *,
    concurrency: int = 32,
    fail_fast: bool = False,
) -> RecordedReport:
    """Rebuild an agent's outputs from the journal and verify them byte for byte.

    Args:
        app: The app whose agent code is replayed.
        agent: The agent.
        store: The journal holding the recorded events (only read).
        selection: Which events (default: every completed event).
        concurrency: Events replayed at once.
        fail_fast: Stop at the first event that does not reproduce.
    """
    spec = app.select([agent])[0]
    bind_to_broker((spec.decoder, spec.encoder), app.broker_url)
    counter = _CountCalls()
    stack = MiddlewareStack([counter])
    report = RecordedReport(agent=spec.name)
    started = time.perf_counter()
    selection = selection or Selection()
    records = [r async for r in recorded_events(store, spec, selection)]
    size = max(1, concurrency) if fail_fast else selection.page
    async for page in recorded_pages(store, spec, records, size):

        async def one(record: EventRecord, page: RecordedPage = page) -> RecordedResult:
            event = rebuild(spec, record)
            if record.outcome != "ok" or event is None:
                why = f"outcome {record.outcome}" if event is not None else "no journaled message"
                return RecordedResult(record.event_id, record.key, "skipped", why)
            steps = tuple(page.steps[record.event_id])
            live = _output_rows(spec.name, record.event_id, page.outputs[record.event_id])
            journal = ReplayJournal(recorded=steps)
            await _executor(spec, journal, None, stack, NothingRecorded(), app).process(event)
            return _verify(spec, record, journal, live)

        results = await _bounded(page.records, one, concurrency)
        report.results.extend(results)
        if fail_fast and any(r.status in ("different", "failed") for r in results):
            break
    report.model_calls = counter.calls
    report.seconds = time.perf_counter() - started
    return report


def _executor(
    spec: AgentSpec,
    journal: ReplayJournal,
    provider: LLMProvider | None,
    stack: MiddlewareStack,
    answers: NothingRecorded | JournalAnswers,
    app: App,
) -> Executor:
    return Executor(
        spec,
        journal,
        provider,
        stack,
        owner="replay",
        group=app.group_of(spec),
        lease_s=3600.0,
        answers=answers,
    )


def _verify(
    spec: AgentSpec, record: EventRecord, journal: ReplayJournal, live: list[OutgoingRecord]
) -> RecordedResult:
    if journal.completion is None:
        failure = journal.failures_[-1] if journal.failures_ else None
        detail = "did not complete"
        if failure is not None:
            detail = f"{failure.failure_class}: {failure.message}"
        return RecordedResult(record.event_id, record.key, "failed", detail)
    outputs = list(journal.completion.outputs)
    if [comparable(o) for o in outputs] != [comparable(o) for o in live]:
        detail = f"{len(outputs)} output(s) rebuilt, {len(live)} recorded"
        for n, (a, b) in enumerate(zip(outputs, live, strict=False)):
            if comparable(a) != comparable(b):
                detail = (
                    f"output {n} differs: rebuilt {_head(a.value)!r}, recorded {_head(b.value)!r}"
                )
                break
        return RecordedResult(record.event_id, record.key, "different", detail, len(outputs))
    if journal.completion.result != record.result:
        return RecordedResult(
            record.event_id, record.key, "different", "the returned value differs", len(outputs)
        )
    return RecordedResult(record.event_id, record.key, "identical", "", len(outputs))


@dataclass
class ShadowReport:
    """A shadow run: per-event divergence entries and a summary."""

    run_id: str
    agent: str
    candidate: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _llm_view(steps: Sequence[StepRecord]) -> dict[str, Any]:
    llm = [s for s in steps if s.kind == StepKind.LLM]
    calls = [
        {"name": c.get("name"), "arguments": c.get("arguments")}
        for s in llm
        if isinstance(s.result, dict)
        for c in s.result.get("tool_calls") or []
    ]
    return {
        "llm_calls": len(llm),
        "fresh_calls": sum("answered_from" not in s.meta for s in llm),
        "tokens": sum(int(s.meta.get("total_tokens", 0)) for s in llm),
        "cost_usd": round(sum(float(s.meta.get("cost_usd", 0.0)) for s in llm), 8),
        "tool_calls": calls,
        "effects": [
            {
                "name": s.name,
                "arguments": s.request,
                "suppressed": bool(s.meta.get("suppressed")),
            }
            for s in steps
            if s.kind == StepKind.EFFECT
        ],
    }


def _head(value: bytes | None) -> bytes | None:
    return None if value is None else value[:200]


def _text(value: bytes | None) -> str | None:
    if value is None:  # a tombstone
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


async def replay_shadow(
    app: App,
    agent: str,
    candidate: App,
    store: Store,
    selection: Selection | None = None,
    *,
    candidate_agent: str | None = None,
    candidate_name: str = "",
    run_id: str | None = None,
    concurrency: int = 8,
) -> ShadowReport:
    """Run a candidate agent against recorded events and report where it diverges.

    Args:
        app: The live app (names the recorded agent).
        agent: The live agent.
        candidate: The candidate app.
        store: The journal with the recorded events; the run is stored in its shadow tables.
        selection: Which events (default: every completed event).
        candidate_agent: The candidate's agent name (default: the same name).
        candidate_name: How the candidate is named in the stored run.
        run_id: The run's id (default: generated).
        concurrency: Events run at once.
    """
    spec = app.select([agent])[0]
    cand = candidate.select([candidate_agent or agent])[0]
    bind_to_broker((spec.decoder, spec.encoder, cand.decoder, cand.encoder), app.broker_url)
    run = ShadowRun(
        run_id or f"shadow-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}",
        spec.name,
        candidate_name or f"{candidate.name}:{cand.name}",
        time.time(),
    )
    await store.save_shadow_run(run)
    provider = candidate.provider()
    counter = _CountCalls()
    stack = MiddlewareStack([*candidate.middleware.items, counter])
    selection = selection or Selection()
    records = [r async for r in recorded_events(store, spec, selection)]
    entries: list[dict[str, Any]] = []
    async for page in recorded_pages(store, spec, records, selection.page):

        async def one(record: EventRecord, page: RecordedPage = page) -> dict[str, Any] | None:
            event = rebuild(cand, record)
            if record.outcome != "ok" or event is None:
                return None
            live_steps = page.steps[record.event_id]
            live_outputs = _output_rows(spec.name, record.event_id, page.outputs[record.event_id])
            journal = ReplayJournal()
            answers = JournalAnswers(live_steps)
            await _executor(cand, journal, provider, stack, answers, candidate).process(event)
            return _entry(record, event, live_steps, live_outputs, journal)

        entries += [e for e in await _bounded(page.records, one, concurrency) if e is not None]
    await store.write_shadow_results([ShadowResult(run.run_id, e["event_id"], e) for e in entries])
    summary = summarize(entries, model_calls=counter.calls)
    await store.save_shadow_run(
        ShadowRun(run.run_id, run.agent, run.candidate, run.created_at, time.time(), summary)
    )
    return ShadowReport(run.run_id, spec.name, run.candidate, entries, summary)


def _entry(
    record: EventRecord,
    event: Event,
    live_steps: Sequence[StepRecord],
    live_outputs: Sequence[OutgoingRecord],
    journal: ReplayJournal,
) -> dict[str, Any]:
    live = {
        "status": "completed",
        "result": record.result,
        "outputs": [_text(o.value) for o in live_outputs],
        **_llm_view(live_steps),
    }
    cand_steps = [journal.written[k] for k in sorted(journal.written)]
    completion = journal.completion
    if completion is not None:
        status, error = "completed", None
    else:
        failure = journal.dead[0] if journal.dead else "retry" if journal.released else "failed"
        last = journal.failures_[-1] if journal.failures_ else None
        status, error = f"failed:{failure}", None if last is None else last.message
    cand = {
        "status": status,
        "error": error,
        "result": None if completion is None else to_jsonable(completion.result),
        "outputs": [] if completion is None else [_text(o.value) for o in completion.outputs],
        **_llm_view(cand_steps),
    }
    same = (
        completion is not None
        and cand["result"] == live["result"]
        and cand["outputs"] == live["outputs"]
    )
    return {
        "event_id": record.event_id,
        "key": event.key,
        "source": f"{record.topic}[{record.partition}]@{record.offset}",
        "decision": "same" if same else "different",
        "tool_calls_same": cand["tool_calls"] == live["tool_calls"],
        "effects_same": _effect_calls(cand["effects"]) == _effect_calls(live["effects"]),
        "tokens_delta": cand["tokens"] - live["tokens"],
        "cost_delta_usd": round(cand["cost_usd"] - live["cost_usd"], 8),
        "live": live,
        "candidate": cand,
    }


def _effect_calls(effects: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(e["name"], e["arguments"]) for e in effects]


def summarize(entries: Sequence[dict[str, Any]], *, model_calls: int = 0) -> dict[str, Any]:
    """Divergence rate, cost delta and counts over a shadow run's entries."""
    n = len(entries)
    different = sum(e["decision"] == "different" for e in entries)
    live_cost = sum(e["live"]["cost_usd"] for e in entries)
    cand_cost = sum(e["candidate"]["cost_usd"] for e in entries)
    effects = [x for e in entries for x in e["candidate"]["effects"]]
    return {
        "events": n,
        "same": n - different,
        "different": different,
        "divergence_rate": round(different / n, 6) if n else 0.0,
        "failed": sum(e["candidate"]["status"] != "completed" for e in entries),
        "tool_calls_different": sum(not e["tool_calls_same"] for e in entries),
        "effects_different": sum(not e["effects_same"] for e in entries),
        "effects_answered": sum(not x["suppressed"] for x in effects),
        "effects_suppressed": sum(x["suppressed"] for x in effects),
        "model_calls": model_calls,
        "live_tokens": sum(e["live"]["tokens"] for e in entries),
        "candidate_tokens": sum(e["candidate"]["tokens"] for e in entries),
        "live_cost_usd": round(live_cost, 8),
        "candidate_cost_usd": round(cand_cost, 8),
        "cost_delta_usd": round(cand_cost - live_cost, 8),
        "cost_delta_pct": round((cand_cost - live_cost) / live_cost * 100, 2) if live_cost else 0.0,
    }
