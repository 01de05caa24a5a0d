"""What one worker process has done so far, as the periodic progress line of ``agentstream run``.

:class:`Progress` is a middleware counting the outcome of each delivery in this process; its
:meth:`Progress.line` reads those counts and the workers' buffers::

    progress: 120 done (3.0/s), 4 in flight, 1 dead, 2 retrying, 7 duplicates skipped
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from agentstream.middleware import Middleware, ProcessOutcome
from agentstream.outcomes import DeliveryOutcome
from agentstream.runtime.worker import AgentWorker

DONE = frozenset({DeliveryOutcome.COMPLETED, DeliveryOutcome.STALE})


class Progress(Middleware):
    """Counts deliveries by outcome in this process.

    Args:
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.outcomes: Counter[str] = Counter()
        self._clock = clock
        self.started = clock()
        self._last = (self.started, 0)
        self._seen = 0

    async def after_process(self, inp: ProcessOutcome) -> None:
        """Count one delivery's outcome."""
        self.outcomes[inp.outcome] += 1

    @property
    def done(self) -> int:
        """Deliveries that ended with the event decided here (or skipped as stale)."""
        return sum(self.outcomes[o] for o in DONE)

    def line(self, workers: Sequence[AgentWorker], *, overall: bool = False) -> str:
        """The progress line; the rate is since the previous line (``overall``: since start)."""
        now = self._clock()
        then, done_then = (self.started, 0) if overall else self._last
        self._last = (now, self.done)
        self._seen = self.outcomes.total()
        rate = (self.done - done_then) / max(now - then, 1e-9)
        in_flight = sum(w.scheduler.buffered for w in workers)
        dead, retrying, duplicates = (
            self.outcomes[o]
            for o in (
                DeliveryOutcome.DEAD_LETTERED,
                DeliveryOutcome.RETRY,
                DeliveryOutcome.DUPLICATE,
            )
        )
        return (
            f"{self.done} done ({rate:.1f}/s), {in_flight} in flight, "
            f"{dead} dead, {retrying} retrying, {duplicates} duplicates skipped"
        )

    def changed_since_last_line(self, workers: Sequence[AgentWorker]) -> bool:
        """Whether a progress line would say something new (work done or work in flight)."""
        return self.outcomes.total() != self._seen or any(w.scheduler.buffered for w in workers)
