"""Backends from URLs: which journal and which transport an App uses.

* ``sqlite:///agentstream.db`` (relative), ``sqlite:////var/lib/agentstream.db`` (absolute), or a
  bare file path: the embedded log and/or the SQLite journal.
* ``kafka://host:9092[,host2:9092][?librdkafka.setting=value...]``: Kafka transport.
* ``postgresql://user@host/db``: PostgreSQL journal.
* ``sqs://[endpoint-host:port][?region=...]``: SQS transport.

Each scheme maps to a factory, ``"module:function"``; backends that need optional packages are
imported only when used. A factory gets the URL and this process's :class:`Backends`, typed as
:class:`~agentstream.sqlite_db.SqliteFiles`: the journal and transports never import this module.
One :class:`Backends` object per process owns the connections: an embedded log and a SQLite
journal on the same file share one database thread.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentstream.config import RuntimeConfig
from agentstream.extras import missing_extra_message
from agentstream.failures import ConfigurationError
from agentstream.journal.store import Store
from agentstream.sqlite_db import SqliteDatabase
from agentstream.transports.base import Transport

DEFAULT_URL = "sqlite:///agentstream.db"

TransportFactory = Callable[[str, RuntimeConfig, "Backends"], Transport]
StoreFactory = Callable[[str, "Backends"], Store]

_TRANSPORTS: dict[str, str] = {
    "sqlite": "agentstream.transports.embedded:from_url",
    "kafka": "agentstream.transports.kafka:from_url",
    "sqs": "agentstream.transports.sqs:from_url",
}
_STORES: dict[str, str] = {
    "sqlite": "agentstream.journal.sqlite:from_url",
    "postgresql": "agentstream.journal.postgres:from_url",
    "postgres": "agentstream.journal.postgres:from_url",
}


def default_journal_url(app_name: str) -> str:
    """The journal an app uses when none is configured: a SQLite file named after the app.

    One journal per app: the journal is keyed by agent name and event identity, so two apps in
    one folder sharing a file would take each other's completed events for their own.
    """
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", app_name).strip("-.") or "app"
    return f"sqlite:///{slug}.journal.db"


def scheme_of(url: str) -> str:
    """The URL's scheme (``sqlite`` for bare paths)."""
    if "://" not in url:
        return "sqlite"
    return url.split("://", 1)[0].lower()


def _load(spec: str, kind: str, url: str) -> Callable[..., Any]:
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(missing_extra_message(exc, f"{kind} URL {url!r}")) from exc
    factory: Callable[..., Any] = getattr(module, attr)
    return factory


class Backends:
    """Connections of one process, made from URLs.

    Args:
        broker: Transport URL.
        store: Journal URL.
        config: Runtime settings (embedded log timings).
    """

    def __init__(self, broker: str, store: str, config: RuntimeConfig | None = None) -> None:
        self.broker_url = broker
        self.store_url = store
        self.config = config or RuntimeConfig()
        self._dbs: dict[str, SqliteDatabase] = {}
        self._store: Store | None = None

    def sqlite(self, path: str) -> SqliteDatabase:
        """The shared database object for a SQLite file."""
        key = str(Path(path).resolve())
        if key not in self._dbs:
            self._dbs[key] = SqliteDatabase(path)
        return self._dbs[key]

    def store(self) -> Store:
        """The journal (one per process)."""
        if self._store is None:
            scheme = scheme_of(self.store_url)
            if scheme not in _STORES:
                raise ConfigurationError(
                    f"unknown journal URL scheme {scheme!r} in {self.store_url!r}; "
                    f"use one of {sorted(_STORES)}"
                )
            factory = _load(_STORES[scheme], "journal", self.store_url)
            self._store = factory(self.store_url, self)
        return self._store

    def transport(self) -> Transport:
        """A new transport (one per consumer)."""
        scheme = scheme_of(self.broker_url)
        if scheme not in _TRANSPORTS:
            raise ConfigurationError(
                f"unknown broker URL scheme {scheme!r} in {self.broker_url!r}; "
                f"use one of {sorted(_TRANSPORTS)}"
            )
        factory = _load(_TRANSPORTS[scheme], "broker", self.broker_url)
        transport: Transport = factory(self.broker_url, self.config, self)
        return transport
