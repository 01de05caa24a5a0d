"""Shared fixtures: temporary databases, the simulator, and real services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.services import moto_server, postgres_dsn, tansu_broker, unavailable

# pytest runs on three processes (pytest-xdist, ``-n 3`` in pyproject.toml; the tests mostly
# wait on worker subprocesses, services and timers, so three fit on two cores). The tests below
# start several worker processes each and kill, stop or starve them: each group runs its tests
# one at a time on one process, so at most two chaos runs share the machine, and the outage
# tests (mostly waiting out a stopped service) run beside them.
_GROUPS = {
    "chaos": ("tests/chaos/", "tests/llm/test_shared_limits.py"),
    "chaos-sdk": ("tests/integrations/test_chaos_integrations.py",),
    "outage": (
        "tests/llm/test_provider_outage.py",
        "tests/llm/test_journal_outage.py",
        "tests/postgres/test_journal_outage.py",
        "tests/postgres/test_fresh_start.py",
        "tests/kafka/test_broker_stall.py",
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the chaos and outage tests in their xdist groups (see ``_GROUPS``)."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        for group, prefixes in _GROUPS.items():
            if path.startswith(prefixes):
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file for journal and embedded log."""
    return tmp_path / "agentstream.db"


@pytest.fixture
def db_url(db_path: Path) -> str:
    """The ``sqlite://`` URL of :func:`db_path`."""
    return f"sqlite:///{db_path}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Tansu broker: ``$AGENTSTREAM_TEST_KAFKA`` or one started for the session."""
    given = os.environ.get("AGENTSTREAM_TEST_KAFKA")
    if given:
        yield given
        return
    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """A moto server: ``$AGENTSTREAM_TEST_SQS`` or one started for the session."""
    given = os.environ.get("AGENTSTREAM_TEST_SQS")
    if given:
        yield given
        return
    with moto_server() as endpoint:
        yield endpoint


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
