"""Shared fixtures: temporary databases, the simulator, and real services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import moto_server, tansu_broker


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
