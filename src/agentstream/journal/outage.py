"""Journal outages: what counts as one, and how it is logged.

A journal that cannot be reached (PostgreSQL down, a cut network) or cannot be written (a
full disk under SQLite) is an outage, not a bug: every part of the worker waits and tries
again, and the operator needs to know the state, not a traceback per try. :class:`OutageLog`
writes one line when an outage starts, one every ``every_s`` while it lasts, and one when the
journal answers again.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

from agentstream.failures import TransientError

__all__ = ["JournalOutage", "OutageLog", "is_journal_outage", "quiet_pool_reconnects"]

_SQLITE_OUTAGES = (
    "database or disk is full",
    "disk i/o error",
    "database is locked",
    "unable to open database",
    "attempt to write a readonly database",
)


class JournalOutage(TransientError):
    """The journal cannot be reached or written right now."""


def is_journal_outage(exc: BaseException) -> bool:
    """Whether an error says the journal is unavailable (rather than a bug or a conflict)."""
    if isinstance(exc, JournalOutage):
        return True
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        return any(s in text for s in _SQLITE_OUTAGES)
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_journal_outage(cause)


class OutageLog:
    """One log line per state change of something that fails and comes back.

    An outage ends only when tries have succeeded for ``settle_s`` with no failure: a journal
    on a nearly full disk lets some writes through and refuses others, and without the
    settling time it would be logged as down and back every second.

    Args:
        what: What is unavailable, as the log lines name it (``journal``, ``agent x: poll``).
        logger: Where the lines go.
        every_s: While the outage lasts, a reminder this often.
        settle_s: How long tries must succeed before the outage is logged as over.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        every_s: float = 30.0,
        settle_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._log = logger
        self.every_s = every_s
        self.settle_s = settle_s
        self._clock = clock
        self._since: float | None = None
        self._last_failure = 0.0
        self._next = 0.0
        self.failures = 0

    @property
    def down(self) -> bool:
        """Whether an outage is going on (logged as started and not yet as over)."""
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """A try failed: log it if the outage starts, or if a reminder is due."""
        now = self._clock()
        self.failures += 1
        self._last_failure = now
        if self._since is None:
            self._since, self._next = now, now + self.every_s
            self._log.warning(
                "%s unavailable: %s: %s; waiting and retrying (no answer is lost)",
                self.what,
                type(exc).__name__,
                " ".join(str(exc).split())[:300],
            )
            self._log.debug("%s: first failure", self.what, exc_info=exc)
        elif now >= self._next:
            self._next = now + self.every_s
            self._log.warning(
                "%s still unavailable after %.0fs (%d failed tries): %s",
                self.what,
                now - self._since,
                self.failures,
                " ".join(str(exc).split())[:300],
            )

    def ok(self) -> None:
        """A try succeeded: log the end of an outage once tries have kept succeeding."""
        if self._since is None:
            return
        now = self._clock()
        if now - self._last_failure < self.settle_s:
            return
        self._log.warning(
            "%s back after %.0fs (%d failed tries)",
            self.what,
            now - self._since,
            self.failures,
        )
        self._since, self.failures = None, 0


class _PoolReconnects(logging.Filter):
    """Drops psycopg_pool's line per failed reconnect and per dropped connection.

    During an outage the pool would log one every few hundred milliseconds; the journal's own
    :class:`OutageLog` lines say the same once.
    """

    _NOISE = ("error connecting in", "discarding closed connection")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self._NOISE)


_POOL_FILTER = _PoolReconnects()


def quiet_pool_reconnects() -> None:
    """Keep psycopg_pool's per-attempt reconnect warnings out of the log (idempotent)."""
    logging.getLogger("psycopg.pool").addFilter(_POOL_FILTER)
