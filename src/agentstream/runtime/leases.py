"""Claim leases a worker holds, and what its handlers may still do under them.

A :class:`Lease` is shared by the handler (through its Context) and the lease keeper, which
runs apart from the event loop (:mod:`agentstream.runtime.keeper`) and so keeps renewing while
user code blocks or burns CPU. The keeper writes what the journal confirmed: ``until`` moves
forward on each renewal, ``lost`` is set when the journal says the claim moved on. The handler
reads both before each journaled step: it does not start a model call, a step function or an
effect on a claim that is gone or about to run out (:meth:`Lease.check`), and an async call in
flight is cancelled when the lease runs out under it (:meth:`Lease.bound`).

Once the handler is done, the claim ends by its own last journal write (completion, a retry's
release, a dead letter, a wait). The executor marks the lease ``ending`` before that write
(:meth:`LeaseBook.ending`), so a renewal that lands after it, while the lease is still in the
book (a group commit not yet answered), is not taken for a takeover: the journal no longer
grants the claim because this claim ended it. Nothing under the lease reads ``lost`` after the
handler, and each of those writes is fenced by the epoch: if another worker did take the event
over, the write is rejected (``fenced``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from agentstream.failures import LeaseLostError

T = TypeVar("T")

_WATCH_S = 0.25
"""Longest time between two looks at the lease while an async call runs under it."""


@dataclass(slots=True)
class Lease:
    """One claim's lease as this worker knows it.

    Attributes:
        identity: The event.
        epoch: The claim's fencing epoch.
        until: Wall-clock end of the lease the journal last confirmed.
        margin_s: How close to ``until`` a new step may still start.
        lost: The journal said the claim moved on (another worker took it over).
        ending: The handler is done and the claim's own last write is under way: a renewal
            that finds the claim gone no longer marks it lost.
    """

    identity: str
    epoch: int
    until: float
    margin_s: float
    lost: bool = False
    ending: bool = False

    def remaining(self, now: float | None = None) -> float:
        """Seconds of confirmed lease left."""
        return self.until - (time.time() if now is None else now)

    def check(self) -> None:
        """Raise :class:`LeaseLostError` if no new journaled step may start under this lease."""
        if self.lost:
            raise LeaseLostError(f"claim on {self.identity} (epoch {self.epoch}) was taken over")
        left = self.remaining()
        if left < self.margin_s:
            raise LeaseLostError(
                f"claim on {self.identity} (epoch {self.epoch}) runs out in {left:.1f}s and "
                "could not be renewed"
            )

    async def bound(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()``, cancelled if the lease is lost or runs out before it returns.

        A takeover waits for the lease to end before it starts the same step, so an async
        call cut off here can never overlap the successor's.
        """
        task = asyncio.ensure_future(call())
        try:
            while True:
                left = self.remaining()
                if self.lost or left <= 0:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise LeaseLostError(
                        f"claim on {self.identity} (epoch {self.epoch}) "
                        f"{'was taken over' if self.lost else 'ran out'} during a call"
                    )
                done, _ = await asyncio.wait({task}, timeout=min(left, _WATCH_S))
                if done:
                    return task.result()
        except asyncio.CancelledError:
            task.cancel()
            raise


class LeaseBook:
    """The leases one worker holds, readable from the keeper's thread.

    Args:
        lease_s: Lease length granted at claim and on each renewal.
    """

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}

    def hold(self, identity: str, epoch: int, until: float) -> Lease:
        """Register a fresh claim."""
        lease = Lease(identity, epoch, until, margin_s=self.lease_s / 4)
        with self._lock:
            self._leases[identity] = lease
        return lease

    def ending(self, lease: Lease) -> None:
        """Mark a claim as ending by its own last write (the handler is done).

        A renewal that then finds the claim gone found that write, not a takeover.
        """
        with self._lock:
            lease.ending = True

    def drop(self, lease: Lease) -> None:
        """Forget a claim that ended (only if it is still the registered one)."""
        with self._lock:
            if self._leases.get(lease.identity) is lease:
                del self._leases[lease.identity]

    def get(self, identity: str) -> Lease | None:
        """The registered lease of an event, if any."""
        with self._lock:
            return self._leases.get(identity)

    def claims(self) -> list[tuple[str, int]]:
        """Current ``(identity, epoch)`` pairs, for renewal."""
        with self._lock:
            return [(lease.identity, lease.epoch) for lease in self._leases.values()]

    def renewed(self, claims: list[tuple[str, int]], lost: set[str], until: float) -> list[str]:
        """Apply a renewal's answer; return the identities newly found lost."""
        newly: list[str] = []
        with self._lock:
            for identity, epoch in claims:
                lease = self._leases.get(identity)
                if lease is None or lease.epoch != epoch:
                    continue  # finished (or re-claimed) while the renewal ran
                if identity in lost:
                    if not lease.lost and not lease.ending:
                        lease.lost = True
                        newly.append(identity)
                else:
                    lease.until = max(lease.until, until)
        return newly
