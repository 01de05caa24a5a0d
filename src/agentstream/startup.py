"""Start-up checks: misconfigurations reported in one line, with the fix, before any event.

Run by :meth:`agentstream.App.run` once the journal is open. Each check either logs one warning
(the app can still run, but something will surprise the user) or raises
:class:`~agentstream.failures.ConfigurationError` (the app cannot do its job).
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable, Sequence
from typing import Any

from agentstream.agent import AgentSpec
from agentstream.failures import ConfigurationError
from agentstream.journal.store import Store
from agentstream.transports.base import DestinationChecker, Transport

log = logging.getLogger("agentstream.startup")


async def warn_about_shared_journal(store: Store, agents: Sequence[tuple[str, str]]) -> None:
    """Warn when another app's consumer group already journaled events for one of our agents.

    The journal is keyed by agent name and event identity: an agent of the same name in another
    app (another consumer group) would find that app's events completed and skip them.

    Args:
        store: The open journal.
        agents: (agent name, consumer group) of each agent about to run.
    """
    for name, group in agents:
        seen = await store.list_events(agent=name, limit=1)
        other = seen[0].group_id if seen else None
        if other and other != group:
            log.warning(
                "journal already holds events of agent %r from consumer group %r; this app "
                "(group %r) will take them as its own and skip them. Give each app its own "
                "journal: App(..., store='sqlite:///%s.journal.db') or $AGENTSTREAM_STORE",
                name,
                other,
                group,
                group.split(".", 1)[0],
            )


def uses_llm(handler: Callable[..., Any]) -> bool:
    """Whether a handler's code (or code nested in it) names ``llm``, as in ``ctx.llm.parse``.

    A heuristic: it sees ``ctx.llm`` in the handler itself, not in helpers it calls.
    """
    code = getattr(inspect.unwrap(handler), "__code__", None)
    pending = [code] if isinstance(code, types.CodeType) else []
    while pending:
        current = pending.pop()
        if "llm" in current.co_names:
            return True
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return False


def check_provider(app_name: str, specs: Sequence[AgentSpec], provider: object) -> None:
    """Refuse to start an agent that calls ``ctx.llm`` when the app has no LLM provider.

    Without this every event would be dead-lettered ("no LLM provider"), one by one.

    Raises:
        ConfigurationError: One line naming the agent and the fix.
    """
    if provider is not None:
        return
    for spec in specs:
        if uses_llm(spec.handler):
            raise ConfigurationError(
                f"agent {spec.name!r} calls ctx.llm but App({app_name!r}) has no LLM provider; "
                "pass llm=OpenAIProvider() (reads OPENAI_API_KEY and OPENAI_BASE_URL), "
                "llm=AnthropicProvider() or, for a local try, llm=SimulatedProvider()"
            )


async def check_destinations(transport: Transport, specs: Sequence[AgentSpec]) -> None:
    """Make sure every output and dead-letter topic exists, before the first event.

    Raises:
        ConfigurationError: A destination is missing and will not be created (the message
            names the agent and the option).
    """
    if not isinstance(transport, DestinationChecker):
        return
    for spec in specs:
        for option, topic in (("output", spec.output), ("dead_letter", spec.dead_letter)):
            if topic is None:
                continue
            try:
                await transport.check_destinations([topic])
            except ConfigurationError as exc:
                raise ConfigurationError(f"agent {spec.name!r}, {option}={topic!r}: {exc}") from exc
