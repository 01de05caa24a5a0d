"""Whether outputs leave: the outbox backlog, its oldest row, and how long publishing has failed.

A worker must never look alive while its outputs never leave. The relay reports every round
to a :class:`PublishWatch`: something published clears the stall; a round that had rows and
published none starts it (if not started). The relay also tells it the backlog every few
seconds; an empty outbox clears the stall.

1. Stalled for ``unhealthy_after_s``: one error log line, and :attr:`PublishWatch.healthy`
   turns false (``/healthz`` answers 503, ``agentstream status`` says so).
2. Stalled for ``exit_after_s``: :meth:`PublishWatch.check` raises :class:`PublishStalled`,
   which ends the worker process with a non-zero exit code, so a supervisor restarts it.
3. Publishing again: one log line, healthy again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from agentstream.failures import AgentStreamError
from agentstream.middleware import OutboxInput

__all__ = ["PublishStalled", "PublishWatch", "exit_anyway"]

log = logging.getLogger("agentstream.relay")


class PublishStalled(AgentStreamError):
    """Outputs have waited and none could be published for longer than allowed."""


class PublishWatch:
    """Tracks whether the relay's outputs leave (see the module docstring).

    Args:
        unhealthy_after_s: Stall after which the relay reports unhealthy.
        exit_after_s: Stall after which :meth:`check` raises :class:`PublishStalled`.
        clock: Monotonic seconds.
        wall: Wall-clock seconds (outbox rows carry wall-clock times).
    """

    def __init__(
        self,
        *,
        unhealthy_after_s: float = 60.0,
        exit_after_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.unhealthy_after_s = unhealthy_after_s
        self.exit_after_s = exit_after_s
        self._clock = clock
        self._wall = wall
        self._stalled_since: float | None = None
        self._round_since: float | None = None
        self._reported = False
        self.pending = 0
        self.oldest_at: float | None = None
        self.journal_ok = True

    @property
    def stalled_s(self) -> float:
        """How long outputs have waited with none published (0: not stalled).

        A round still waiting for the broker counts from its start: a producer blocked on a
        stopped broker must not hide the stall until its own timeout.
        """
        since = [t for t in (self._stalled_since, self._round_since) if t is not None]
        return self._clock() - min(since) if since else 0.0

    @property
    def healthy(self) -> bool:
        """False once stalled for ``unhealthy_after_s``."""
        return self.stalled_s < self.unhealthy_after_s

    @property
    def oldest_age_s(self) -> float:
        """Age of the oldest unpublished row at the last backlog report."""
        return 0.0 if self.oldest_at is None else max(0.0, self._wall() - self.oldest_at)

    def round_started(self) -> None:
        """The relay is producing rows to the broker."""
        if self._round_since is None:
            self._round_since = self._clock()

    def round_ended(self) -> None:
        """The round is over (what it published was reported)."""
        self._round_since = None

    def published(self) -> None:
        """A round published something."""
        if self._reported:
            log.warning(
                "outbox relay: publishing again after %.0fs; %d row(s) waiting",
                self.stalled_s,
                self.pending,
            )
        self._stalled_since = None
        self._reported = False

    def nothing_taken(self) -> None:
        """A round had rows and the broker took none of them."""
        if self._stalled_since is None:
            self._stalled_since = self._round_since or self._clock()

    def backlog(self, pending: int, oldest_at: float | None) -> None:
        """The outbox's unpublished rows and the time its oldest was written."""
        self.pending, self.oldest_at = pending, oldest_at
        if pending == 0:
            self.published()

    def snapshot(self) -> OutboxInput:
        """The state, for metrics and health."""
        return OutboxInput(
            self.pending, self.oldest_age_s, self.stalled_s, self.healthy, self.journal_ok
        )

    def check(self) -> None:
        """Log once when unhealthy; raise when stalled past ``exit_after_s``.

        Raises:
            PublishStalled: Nothing has been published for ``exit_after_s``.
        """
        stalled = self.stalled_s
        if stalled >= self.exit_after_s:
            raise PublishStalled(
                f"no output could be published for {stalled:.0f}s ({self.pending} waiting, "
                f"oldest {self.oldest_age_s:.0f}s old); exiting so that a supervisor restarts "
                "this worker"
            )
        if not self.healthy and not self._reported:
            self._reported = True
            log.error(
                "outbox relay: no output published for %.0fs (%d waiting, oldest %.0fs old); "
                "the worker reports unhealthy and exits after %.0fs",
                stalled,
                self.pending,
                self.oldest_age_s,
                self.exit_after_s,
            )


def exit_anyway(after_s: float, *, code: int) -> threading.Timer:
    """End the process with ``code`` after ``after_s`` unless it has exited by then."""

    def leave() -> None:
        log.error("shutdown did not finish in %.0fs; exiting with code %d", after_s, code)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(after_s, leave)
    timer.daemon = True
    timer.start()
    return timer
