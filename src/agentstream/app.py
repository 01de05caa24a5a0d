"""The App: the front door where agents are declared and run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from agentstream.agent import (
    AgentSpec,
    Budget,
    Handler,
    NonDeterminismPolicy,
    Ordering,
    input_type_of,
)
from agentstream.backends import DEFAULT_URL, Backends, default_journal_url, scheme_of
from agentstream.config import RuntimeConfig
from agentstream.event import IdentitySpec
from agentstream.failures import ConfigurationError, Retry
from agentstream.formats.base import Decoder, Encoder, bind_to_broker
from agentstream.formats.cloud_events import CloudEventsDecoder
from agentstream.journal.signals import send_signal
from agentstream.journal.store import Store
from agentstream.journal.waits import SignalReceipt, WaitJournal
from agentstream.llm.admission import AdmissionControl
from agentstream.llm.base import LLMProvider
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.pricing import PriceTable
from agentstream.middleware import Middleware, MiddlewareStack
from agentstream.runtime.publish_watch import PublishStalled, PublishWatch, exit_anyway
from agentstream.runtime.relay import OutboxRelay
from agentstream.runtime.worker import AgentWorker
from agentstream.startup import check_destinations, check_provider, warn_about_shared_journal

log = logging.getLogger("agentstream.app")

ProviderSpec = LLMProvider | Callable[[], LLMProvider] | None


def check_cost_ceilings(specs: Sequence[AgentSpec], provider: LLMProvider | None) -> None:
    """Refuse a per-event cost ceiling on a model the provider's price table cannot price.

    Raises:
        ConfigurationError: An agent has ``Budget(max_cost_usd=...)`` on an unpriced model and
            not ``allow_unpriced=True``.
    """
    prices = getattr(provider, "prices", None)
    if not isinstance(prices, PriceTable):
        return
    for spec in specs:
        budget = spec.budget
        if budget.max_cost_usd is None or budget.allow_unpriced or prices.is_priced(spec.model):
            continue
        raise ConfigurationError(
            f"agent {spec.name!r}: Budget(max_cost_usd={budget.max_cost_usd}) on model "
            f"{spec.model!r}, which no price source knows, would never trigger. Price it "
            f"(PriceTable.set), or, when your gateway reports each call's cost, pass "
            "Budget(..., allow_unpriced=True)."
        )


class App:
    """An agentstream application: a set of agents, a broker, a journal and an LLM provider.

    Args:
        name: Application name (prefix of consumer groups).
        broker: Transport URL; default ``$AGENTSTREAM_BROKER`` or ``sqlite:///agentstream.db``
            (the embedded log, shared by every app in the folder, each in its own consumer
            group).
        store: Journal URL; default ``$AGENTSTREAM_STORE``, else the broker's SQLite file when
            an embedded broker is configured, else ``sqlite:///<name>.journal.db``: one journal
            per app, so two apps in one folder never see each other's events.
        llm: LLM provider, or a zero-argument factory called once per worker process.
        middleware: Middleware, in order.
        config: Runtime settings.
        admission: Admission control for model calls (per-model RPM/TPM buckets shared through
            the journal, AIMD concurrency, 429s absorbed by waiting, per-agent spend budgets).
            Default: an :class:`~agentstream.llm.admission.AdmissionControl` that learns limits
            from rate-limit headers, whenever ``llm`` is set. ``False`` turns it off: a 429
            then fails the event's attempt like any transient error.
        breaker: Circuit breakers per model and provider endpoint, shared through the journal:
            during a provider outage calls wait (no attempt spent, consumption paused) and one
            probe per breaker finds out when the provider is back. Default: a
            :class:`~agentstream.llm.breaker.CircuitBreaker` whenever ``llm`` is set; ``False``
            turns it off (an outage then spends the events' attempts).

    Example::

        app = agentstream.App("support")

        @app.agent(source="tickets", key=lambda t: t.customer_id, output="triage")
        async def triage(ctx: agentstream.Context, ticket: Ticket) -> Triage:
            return await ctx.llm.parse(Triage, system=PROMPT, user=ticket.text)
    """

    def __init__(
        self,
        name: str,
        *,
        broker: str | None = None,
        store: str | None = None,
        llm: ProviderSpec = None,
        middleware: Sequence[Middleware] = (),
        config: RuntimeConfig | None = None,
        admission: AdmissionControl | bool | None = None,
        breaker: CircuitBreaker | bool | None = None,
    ) -> None:
        if not name:
            raise ConfigurationError("App needs a name")
        self.name = name
        configured_broker = broker or os.environ.get("AGENTSTREAM_BROKER")
        self.broker_url = configured_broker or DEFAULT_URL
        self.store_url = (
            store
            or os.environ.get("AGENTSTREAM_STORE")
            or (
                configured_broker
                if configured_broker and scheme_of(configured_broker) == "sqlite"
                else default_journal_url(name)
            )
        )
        self._llm = llm
        self._provider: LLMProvider | None = None
        self.middleware = MiddlewareStack(middleware)
        listed = [m for m in middleware if isinstance(m, AdmissionControl)]
        if isinstance(admission, AdmissionControl):
            self.admission: AdmissionControl | None = admission
        elif admission is False:
            self.admission = None
        else:
            self.admission = (
                listed[0] if listed else AdmissionControl() if llm is not None else None
            )
        if self.admission is not None and self.admission not in listed:
            # Last in the stack: its before_llm_call runs right before the call, after every
            # other middleware had its say, and its after_llm_call runs first.
            self.middleware.add(self.admission)
        self.breaker: CircuitBreaker | None = self.middleware.find(CircuitBreaker)
        if isinstance(breaker, CircuitBreaker) and self.breaker is None:
            self.breaker = breaker
            self.middleware.add(breaker)
        elif breaker is None and self.breaker is None and llm is not None:
            self.breaker = CircuitBreaker()
            self.middleware.add(self.breaker)
        elif breaker is False:
            self.breaker = None
        if self.breaker is not None:
            self.breaker.bind(self.middleware)
        self.config = config or RuntimeConfig()
        self.agents: dict[str, AgentSpec] = {}
        self._running: tuple[Store, list[AgentWorker]] | None = None

    def __repr__(self) -> str:
        return f"App({self.name!r}, broker={self.broker_url!r}, store={self.store_url!r})"

    def agent(
        self,
        *,
        source: str,
        name: str | None = None,
        key: Callable[[Any], Any] | None = None,
        identity: IdentitySpec = None,
        output: str | None = None,
        concurrency: int = 16,
        retry: Retry | None = None,
        dead_letter: str | None = None,
        version: Callable[[Any], Any] | None = None,
        agent_version: str = "1",
        model: str = "sim-1",
        fallback_model: str | None = None,
        prompt_version: str | None = None,
        max_payload_bytes: int = 1_048_576,
        nondeterminism: NonDeterminismPolicy | str = NonDeterminismPolicy.DEAD_LETTER,
        budget: Budget | None = None,
        ordering: Ordering | str = Ordering.KEY,
        hold_key_while_waiting: bool = True,
        group: str | None = None,
        input_type: Any = None,
        decoder: Decoder | None = None,
        encoder: Encoder | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare an agent consuming ``source``.

        Args:
            source: Topic or queue to consume.
            name: Agent name (default: the function's name).
            key: Ordering key function of the payload (default: the record key).
            identity: ``"header:NAME"`` or a function of the payload (default: the CloudEvents
                ``id`` header, else source coordinates, which miss producer duplicates).
            output: Topic for the return value and ``ctx.emit`` records.
            concurrency: Most keys in flight at once.
            retry: Retry policy for transient failures.
            dead_letter: Topic for dead-letter records.
            version: Entity version function; older or equal versions are skipped as stale.
            agent_version: Version of the agent's code and prompts.
            model: Default model for ``ctx.llm``.
            fallback_model: Model that answers while ``model``'s circuit breaker is open
                (None: calls wait for the provider to come back).
            prompt_version: Default prompt version recorded with decisions.
            max_payload_bytes: Larger payloads are dead-lettered as poison.
            nondeterminism: Policy for fingerprint mismatches on resume.
            budget: Per-event ceilings on model calls, tokens and cost.
            ordering: ``key``, or ``strict`` to park a key behind its dead letter.
            hold_key_while_waiting: Under strict ordering, park later events of a key behind
                an event of it that waits (``ctx.wait_for``, ``ctx.sleep``); False lets them go.
            group: Consumer group (default ``<app>.<agent>``).
            input_type: Payload type (default: the handler's annotation; JSON when absent).
            decoder: How records become payloads (see :mod:`agentstream.formats`); default:
                CloudEvents in binary or structured mode when a record is one, else the value
                parsed by the input type.
            encoder: How outputs become records, e.g.
                :class:`~agentstream.formats.CloudEventsEncoder`; default: JSON.
        """

        def register(handler: Handler) -> Handler:
            agent_name = name or handler.__name__
            if agent_name in self.agents:
                raise ConfigurationError(f"agent {agent_name!r} is declared twice")
            spec = AgentSpec(
                name=agent_name,
                handler=handler,
                source=source,
                key=key,
                identity=identity,
                input_type=input_type if input_type is not None else input_type_of(handler),
                output=output,
                concurrency=concurrency,
                retry=retry or Retry(),
                dead_letter=dead_letter,
                version=version,
                agent_version=agent_version,
                model=model,
                fallback_model=fallback_model,
                prompt_version=prompt_version,
                max_payload_bytes=max_payload_bytes,
                nondeterminism=NonDeterminismPolicy(nondeterminism),
                budget=budget or Budget(),
                ordering=Ordering(ordering),
                hold_key_while_waiting=hold_key_while_waiting,
                group=group,
                decoder=decoder or CloudEventsDecoder(required=False),
                encoder=encoder,
            )
            self.agents[agent_name] = spec
            return handler

        return register

    async def signal(
        self,
        agent: str,
        event_id: str,
        name: str,
        data: Any = None,
        *,
        signal_id: str | None = None,
        unknown_ok: bool = False,
    ) -> SignalReceipt:
        """Send the signal ``name`` to an event of ``agent``.

        Sent through :func:`agentstream.journal.signals.send_signal`: applied once per
        ``signal_id`` (default: from the name and data); an event waiting for it resumes on
        whichever worker is alive (at once when this process runs the agent).

        Raises:
            SignalRejected: The event is completed or dead-lettered (the signal is recorded).
            SignalForUnknownEvent: The journal has no such event (the signal is kept) and
                ``unknown_ok`` is False.
        """
        self.select([agent])
        running = self._running
        if running is not None:
            store, workers = running
            if not isinstance(store, WaitJournal):
                raise ConfigurationError(f"journal {store!r} does not support signals")
            receipt = await send_signal(
                store, agent, event_id, name, data, signal_id=signal_id, unknown_ok=unknown_ok
            )
            for worker in workers:
                if worker.spec.name == agent and worker.wakeups is not None:
                    worker.wakeups.poke()
            return receipt
        own = self.backends().store()
        if not isinstance(own, WaitJournal):
            raise ConfigurationError(f"journal {own!r} does not support signals")
        await own.open()
        try:
            return await send_signal(
                own, agent, event_id, name, data, signal_id=signal_id, unknown_ok=unknown_ok
            )
        finally:
            await own.close()

    def group_of(self, spec: AgentSpec) -> str:
        """The consumer group of an agent."""
        return spec.group or f"{self.name}.{spec.name}"

    def provider(self) -> LLMProvider | None:
        """This process's LLM provider (factories are called once)."""
        if self._provider is None and self._llm is not None:
            self._provider = self._llm if isinstance(self._llm, LLMProvider) else self._llm()
        return self._provider

    def backends(self) -> Backends:
        """Fresh backends for this process."""
        return Backends(self.broker_url, self.store_url, self.config)

    def select(self, names: Sequence[str] | None) -> list[AgentSpec]:
        """The agents named (all when None)."""
        if not self.agents:
            raise ConfigurationError(f"app {self.name!r} declares no agents")
        if not names:
            return list(self.agents.values())
        missing = [n for n in names if n not in self.agents]
        if missing:
            raise ConfigurationError(
                f"unknown agent(s) {missing}; app {self.name!r} has {sorted(self.agents)}"
            )
        return [self.agents[n] for n in names]

    async def run(
        self,
        *,
        agents: Sequence[str] | None = None,
        stop: asyncio.Event | None = None,
        install_signal_handlers: bool = True,
        on_started: Callable[[list[AgentWorker]], None] | None = None,
    ) -> None:
        """Run the agents until ``stop`` is set or SIGINT/SIGTERM arrives.

        Args:
            agents: Names of agents to run (default: all).
            stop: Event that ends the run.
            install_signal_handlers: Stop on SIGINT/SIGTERM.
            on_started: Called with the workers once they are built (tests, status).
        """
        specs = self.select(agents)
        check_cost_ceilings(specs, self.provider())
        bind_to_broker([h for s in specs for h in (s.decoder, s.encoder)], self.broker_url)
        check_provider(self.name, specs, self._llm)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
        backends = self.backends()
        store = backends.store()
        relay_transport = backends.transport()
        await store.open()
        try:
            await warn_about_shared_journal(store, [(s.name, self.group_of(s)) for s in specs])
            await relay_transport.start()
            await check_destinations(relay_transport, specs)
        except BaseException:
            with contextlib.suppress(Exception):
                await relay_transport.close()
            await store.close()
            raise
        if self.admission is not None:
            await self.admission.start(store)
        if self.breaker is not None:
            await self.breaker.start(store)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        relay = OutboxRelay(
            store,
            relay_transport,
            owner=owner,
            lease_s=self.config.lease_s,
            watch=PublishWatch(
                unhealthy_after_s=self.config.publish_unhealthy_s,
                exit_after_s=self.config.publish_exit_s,
            ),
            middleware=self.middleware,
        )
        relay_stop = asyncio.Event()
        workers = [
            AgentWorker(
                spec,
                backends.transport(),
                store,
                self.provider(),
                self.middleware,
                self.config,
                owner=owner,
                group=self.group_of(spec),
                relay=relay,
                rate_limit_retry=self.admission.retry if self.admission is not None else None,
                lease_store=lambda: self.backends().store(),
            )
            for spec in specs
        ]
        self._running = (store, workers)
        if on_started is not None:
            on_started(workers)
        relay_task = asyncio.create_task(relay.run(relay_stop), name="outbox-relay")
        tasks = [asyncio.create_task(w.run(), name=f"worker:{w.spec.name}") for w in workers]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                [*tasks, stopper, relay_task], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error("%s failed: %s", task.get_name(), task.exception())
            if relay_task in done and isinstance(relay_task.exception(), PublishStalled):
                # The broker may be gone: closing its clients can block for good. Shut down
                # in order if that works in time, else leave anyway: the journal is durable and
                # the supervisor must get its non-zero exit.
                exit_anyway(self.config.shutdown_grace_s + 15.0, code=3)
        finally:
            self._running = None
            for w in workers:
                w.stop()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
            relay_stop.set()
            (relay_result,) = await asyncio.gather(relay_task, return_exceptions=True)
            await relay_transport.close()
            provider = self._provider
            if provider is not None:
                await provider.aclose()
                self._provider = None
            if self.admission is not None:
                await self.admission.stop()
            if self.breaker is not None:
                await self.breaker.stop()
            await store.close()
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
        errors = [
            r
            for r in [relay_result, *results]
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        if errors:
            raise errors[0]
