"""The broker fixture over the three transports (shared with the format tests)."""

from tests.formats.conftest import Broker, broker, name

__all__ = ["Broker", "broker", "name"]
