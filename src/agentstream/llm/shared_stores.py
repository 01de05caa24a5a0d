"""The stores of the LLM layer's shared state, chosen by where the journal keeps shared state.

Rate-limit buckets (:mod:`agentstream.llm.buckets`) and circuit breakers
(:mod:`agentstream.llm.breaker_state`) hold across worker processes by living next to the
journal (:mod:`agentstream.journal.shared`): a table in a SQLite journal's file, or in a
PostgreSQL journal's schema. A journal that hosts no shared state (or none) gets in-process
stores.
"""

from __future__ import annotations

from agentstream.journal.shared import PostgresHome, SqliteHome, shared_home
from agentstream.llm.breaker_state import (
    BreakerStore,
    LocalBreakers,
    PostgresBreakers,
    SqliteBreakers,
)
from agentstream.llm.buckets import BucketStore, LocalBuckets, SqliteBuckets

__all__ = ["breakers_for_store", "buckets_for_store"]


def buckets_for_store(store: object) -> BucketStore:
    """The bucket store that shares limits through ``store``'s database."""
    match shared_home(store):
        case SqliteHome(db):
            return SqliteBuckets(db)
        case PostgresHome(conninfo, schema):
            from agentstream.llm.buckets_postgres import PostgresBuckets

            return PostgresBuckets(conninfo, schema=schema)
        case _:
            return LocalBuckets()


def breakers_for_store(store: object) -> BreakerStore:
    """The breaker store shared through ``store``'s database."""
    match shared_home(store):
        case SqliteHome(db):
            return SqliteBreakers(db)
        case PostgresHome(conninfo, schema):
            return PostgresBreakers(conninfo, schema=schema)
        case _:
            return LocalBreakers()
