"""Token buckets for admission control, local to a process or shared through a database.

A bucket holds up to ``capacity`` units and refills at ``rate`` units per second. Taking is
all-or-nothing across several buckets (a model call takes one request *and* its estimated
tokens), and a take is granted when every bucket holds at least ``min(amount, capacity)``; the
level may then go negative (debt), so a single call larger than the burst still gets through
and later callers wait until the debt is repaid. A bucket can be *blocked* until a time (a
provider's ``Retry-After``), during which nothing is granted.

Limits must hold across worker processes, so the state lives where every process sees it:

* :class:`LocalBuckets`: in-process (a single worker, or tests);
* :class:`SqliteBuckets`: a table in the SQLite journal file (the embedded default);
* :class:`~agentstream.llm.buckets_postgres.PostgresBuckets`: a table in the PostgreSQL
  journal's schema (workers on many hosts).

:func:`agentstream.llm.shared_stores.buckets_for_store` picks one from where the journal keeps
shared state (:mod:`agentstream.journal.shared`).

Every implementation runs the same arithmetic (:func:`decide`) inside one atomic
read-modify-write, so N processes share one quota instead of getting N of them.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from agentstream.sqlite_db import SqliteDatabase

__all__ = [
    "BucketSpec",
    "BucketState",
    "BucketStore",
    "LocalBuckets",
    "SqliteBuckets",
    "Take",
    "decide",
]


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One bucket: its shared name, burst size and refill rate.

    Attributes:
        name: Name shared by every process using the same quota (``llm:MODEL:tokens``).
        capacity: Most units available at once (the burst).
        rate: Units restored per second.
    """

    name: str
    capacity: float
    rate: float

    @classmethod
    def per_window(
        cls, name: str, limit: float, burst: float, window_s: float = 60.0
    ) -> BucketSpec:
        """A bucket that keeps any sliding window of ``window_s`` within ``limit``.

        With a burst of ``b`` units and a refill of ``(limit - b) / window_s`` per second, no
        window can take more than ``limit``: the shape providers enforce (per minute).

        Args:
            name: Bucket name.
            limit: Units per window.
            burst: Share of the window's limit available at once (0 < burst < 1).
            window_s: Window length in seconds.
        """
        capacity = max(1.0, limit * burst)
        return cls(name, capacity, max(limit - capacity, limit / 2) / window_s)

    @classmethod
    def per_period(cls, name: str, amount: float, period_s: float) -> BucketSpec:
        """A budget of ``amount`` per ``period_s``, all of it usable at once."""
        return cls(name, amount, amount / period_s)


@dataclass(frozen=True, slots=True)
class Take:
    """An amount to take from a bucket."""

    bucket: BucketSpec
    amount: float


@dataclass(slots=True)
class BucketState:
    """A bucket's stored state.

    Attributes:
        level: Units available at ``updated`` (negative: debt).
        updated: When ``level`` was computed (wall-clock seconds).
        blocked_until: Nothing is granted before this time.
    """

    level: float
    updated: float
    blocked_until: float = 0.0

    def refill(self, spec: BucketSpec, now: float) -> None:
        """Bring the level up to date."""
        if now > self.updated:
            self.level = min(spec.capacity, self.level + spec.rate * (now - self.updated))
            self.updated = now


def decide(states: Sequence[BucketState], takes: Sequence[Take], now: float) -> float:
    """Grant ``takes`` (debiting ``states`` in place) or say how long to wait.

    Args:
        states: Current states, one per take, in order (refilled here).
        takes: What to take.
        now: Wall-clock seconds.

    Returns:
        0.0 when granted, else the seconds until every bucket could grant its part.
    """
    wait = 0.0
    for state, take in zip(states, takes, strict=True):
        spec = take.bucket
        state.refill(spec, now)
        if state.blocked_until > now:
            wait = max(wait, state.blocked_until - now)
            continue
        need = min(take.amount, spec.capacity)
        if state.level < need:
            wait = max(wait, (need - state.level) / spec.rate if spec.rate > 0 else math.inf)
    if wait > 0:
        return wait
    for state, take in zip(states, takes, strict=True):
        state.level -= take.amount
    return 0.0


@runtime_checkable
class BucketStore(Protocol):
    """Where bucket state lives; every method is one atomic update."""

    async def open(self) -> None:
        """Create what the store needs (tables)."""
        ...

    async def close(self) -> None:
        """Release what :meth:`open` acquired."""
        ...

    async def take(self, takes: Sequence[Take], now: float) -> float:
        """Take every amount or none; return 0.0 when granted, else seconds to wait."""
        ...

    async def give(self, gives: Sequence[Take], now: float) -> None:
        """Return amounts (negative amounts debit more); levels never exceed capacity."""
        ...

    async def block(self, bucket: BucketSpec, until: float, now: float) -> None:
        """Grant nothing before ``until`` and drop the level to at most zero."""
        ...

    async def cap(self, bucket: BucketSpec, level: float, now: float) -> None:
        """Lower the level to at most ``level`` (what the provider says is left)."""
        ...


def _give(state: BucketState, spec: BucketSpec, amount: float, now: float) -> None:
    state.refill(spec, now)
    state.level = min(spec.capacity, state.level + amount)


def _block(state: BucketState, spec: BucketSpec, until: float, now: float) -> None:
    state.refill(spec, now)
    state.level = min(state.level, 0.0)
    state.blocked_until = max(state.blocked_until, until)


def _cap(state: BucketState, spec: BucketSpec, level: float, now: float) -> None:
    state.refill(spec, now)
    state.level = min(state.level, level)


class LocalBuckets:
    """Buckets in this process's memory."""

    def __init__(self) -> None:
        self._states: dict[str, BucketState] = {}

    def _state(self, spec: BucketSpec, now: float) -> BucketState:
        state = self._states.get(spec.name)
        if state is None:
            state = self._states[spec.name] = BucketState(spec.capacity, now)
        return state

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    async def take(self, takes: Sequence[Take], now: float) -> float:
        """Take every amount or none (see :func:`decide`)."""
        return decide([self._state(t.bucket, now) for t in takes], takes, now)

    async def give(self, gives: Sequence[Take], now: float) -> None:
        """Return amounts."""
        for g in gives:
            _give(self._state(g.bucket, now), g.bucket, g.amount, now)

    async def block(self, bucket: BucketSpec, until: float, now: float) -> None:
        """Block a bucket until ``until``."""
        _block(self._state(bucket, now), bucket, until, now)

    async def cap(self, bucket: BucketSpec, level: float, now: float) -> None:
        """Lower a bucket's level."""
        _cap(self._state(bucket, now), bucket, level, now)


_SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS as_limit_buckets (name TEXT PRIMARY KEY, level REAL NOT NULL, "
    "updated REAL NOT NULL, blocked_until REAL NOT NULL DEFAULT 0) WITHOUT ROWID"
)


def _sqlite_load(
    conn: sqlite3.Connection, specs: Sequence[BucketSpec], now: float
) -> list[BucketState]:
    states: list[BucketState] = []
    for spec in specs:
        row = conn.execute(
            "SELECT level, updated, blocked_until FROM as_limit_buckets WHERE name = ?",
            (spec.name,),
        ).fetchone()
        states.append(BucketState(spec.capacity, now) if row is None else BucketState(*row))
    return states


def _sqlite_save(
    conn: sqlite3.Connection, specs: Sequence[BucketSpec], states: Sequence[BucketState]
) -> None:
    conn.executemany(
        "INSERT INTO as_limit_buckets (name, level, updated, blocked_until) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET level = excluded.level, updated = excluded.updated, "
        "blocked_until = excluded.blocked_until",
        [
            (s.name, st.level, st.updated, st.blocked_until)
            for s, st in zip(specs, states, strict=True)
        ],
    )


class SqliteBuckets:
    """Buckets in a table of the SQLite journal, shared by every process using the file.

    Each operation is one write transaction (``BEGIN IMMEDIATE`` on the journal's database
    thread), so concurrent takes from several processes are serialised by SQLite's write lock.

    Args:
        db: The journal's database.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def open(self) -> None:
        """Create the bucket table."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_SQLITE_TABLE)

        await self.db.write(op)

    async def close(self) -> None:
        """Nothing to release: the database belongs to the journal."""

    async def take(self, takes: Sequence[Take], now: float) -> float:
        """Take every amount or none, atomically across processes."""
        specs = [t.bucket for t in takes]

        def op(conn: sqlite3.Connection) -> float:
            states = _sqlite_load(conn, specs, now)
            wait = decide(states, takes, now)
            if wait == 0.0:
                _sqlite_save(conn, specs, states)
            return wait

        return await self.db.write(op)

    async def give(self, gives: Sequence[Take], now: float) -> None:
        """Return amounts."""
        if not gives:
            return
        specs = [g.bucket for g in gives]

        def op(conn: sqlite3.Connection) -> None:
            states = _sqlite_load(conn, specs, now)
            for spec, state, g in zip(specs, states, gives, strict=True):
                _give(state, spec, g.amount, now)
            _sqlite_save(conn, specs, states)

        await self.db.write(op)

    async def block(self, bucket: BucketSpec, until: float, now: float) -> None:
        """Block a bucket until ``until`` for every process."""

        def op(conn: sqlite3.Connection) -> None:
            states = _sqlite_load(conn, [bucket], now)
            _block(states[0], bucket, until, now)
            _sqlite_save(conn, [bucket], states)

        await self.db.write(op)

    async def cap(self, bucket: BucketSpec, level: float, now: float) -> None:
        """Lower a bucket's level for every process."""

        def op(conn: sqlite3.Connection) -> None:
            states = _sqlite_load(conn, [bucket], now)
            _cap(states[0], bucket, level, now)
            _sqlite_save(conn, [bucket], states)

        await self.db.write(op)
