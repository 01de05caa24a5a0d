"""Fixtures for the integrations: the simulator over real HTTP."""

from __future__ import annotations

from tests.llm.conftest import simulator

__all__ = ["simulator"]
