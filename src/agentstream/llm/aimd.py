"""Adaptive concurrency: how many model calls one process keeps in flight, found by AIMD.

The limit starts small and grows while calls succeed (slow start doubles it every round trip
until the first sign of trouble, then it grows by one per round trip), and shrinks
multiplicatively when the provider answers 429 or when latency climbs well above its long-run
level, which is how an overloaded endpoint shows it before it starts rejecting. This is the
additive-increase/multiplicative-decrease rule TCP uses for its congestion window.

Waiters are served in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

__all__ = ["AdaptiveConcurrency"]


class AdaptiveConcurrency:
    """An AIMD-sized semaphore.

    Args:
        initial: Starting limit.
        minimum: Lowest limit.
        maximum: Highest limit.
        backoff: Factor applied on a 429.
        latency_backoff: Factor applied when latency climbs.
        latency_tolerance: Short-run latency above this multiple of the long-run latency counts
            as overload.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        *,
        initial: int = 8,
        minimum: int = 1,
        maximum: int = 256,
        backoff: float = 0.5,
        latency_backoff: float = 0.9,
        latency_tolerance: float = 2.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        self.limit = float(initial)
        self.minimum = minimum
        self.maximum = maximum
        self.backoff = backoff
        self.latency_backoff = latency_backoff
        self.latency_tolerance = latency_tolerance
        self.in_flight = 0
        self.slow_start = True
        self.decreases = 0
        self._clock = clock
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._short: float | None = None
        self._long: float | None = None
        self._samples = 0
        self._last_decrease = -1e18

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return len(self._waiters)

    @property
    def would_wait(self) -> bool:
        """Whether an :meth:`acquire` now would have to wait."""
        return bool(self._waiters) or not self._has_room()

    def _has_room(self) -> bool:
        return self.in_flight < max(self.minimum, int(self.limit))

    async def acquire(self) -> None:
        """Wait for a slot."""
        if self._has_room() and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.in_flight -= 1  # granted and cancelled at once: give the slot back
                self._wake()
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def release(self, *, rate_limited: bool = False, latency_s: float | None = None) -> None:
        """Give a slot back and adapt the limit to how the call went.

        Args:
            rate_limited: The provider answered 429.
            latency_s: The call's latency when it succeeded (None for other failures).
        """
        self.in_flight = max(0, self.in_flight - 1)
        if rate_limited:
            self._decrease(self.backoff)
        elif latency_s is not None:
            self._observe(latency_s)
        self._wake()

    def _round_trip(self) -> float:
        return self._short or 1.0

    def _decrease(self, factor: float) -> None:
        now = self._clock()
        if now - self._last_decrease < self._round_trip():
            return  # one decrease per round trip: a burst of 429s is one signal
        self._last_decrease = now
        self.slow_start = False
        self.decreases += 1
        self.limit = max(float(self.minimum), self.limit * factor)

    def _observe(self, latency_s: float) -> None:
        self._samples += 1
        self._short = latency_s if self._short is None else 0.8 * self._short + 0.2 * latency_s
        self._long = latency_s if self._long is None else 0.98 * self._long + 0.02 * latency_s
        if self._samples > 20 and self._short > self.latency_tolerance * self._long:
            self._decrease(self.latency_backoff)
            return
        if self.in_flight + 1 < int(self.limit) * 0.5:
            return  # the limit is not what holds us back; do not grow it
        step = 1.0 if self.slow_start else 1.0 / self.limit
        self.limit = min(float(self.maximum), self.limit + step)

    def _wake(self) -> None:
        while self._waiters and self._has_room():
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)
