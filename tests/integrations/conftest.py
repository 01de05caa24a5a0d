"""Fixtures for the integrations: the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentstream.integrations import JournaledTransport
from tests.llm.conftest import simulator

__all__ = ["simulator"]


@pytest.fixture
async def transport() -> AsyncIterator[JournaledTransport]:
    """A journaled transport whose connections are closed after the test."""
    journaled = JournaledTransport()
    yield journaled
    await journaled.aclose()
