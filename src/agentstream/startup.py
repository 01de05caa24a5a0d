"""Start-up checks: misconfigurations reported in one line, with the fix, before any event.

Run by :meth:`agentstream.App.run` once the journal is open. Each check either logs one warning
(the app can still run, but something will surprise the user) or raises
:class:`~agentstream.failures.ConfigurationError` (the app cannot do its job).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agentstream.journal.store import Store

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
