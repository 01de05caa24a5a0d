"""A PostgreSQL journal of its own for each test: a fresh schema on the test server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.services import postgres_dsn, unavailable


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A schema name no one uses yet (stores create it), dropped after the test."""
    try:
        psycopg.connect(postgres_dsn(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {postgres_dsn()}: {exc}")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """The journal URL of :func:`pg_schema`."""
    dsn = postgres_dsn()
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={pg_schema}"
