"""The PostgreSQL journal: one database shared by worker processes on many hosts.

The same files, with the same roles, as :mod:`agentstream.journal.sqlite`: ``store`` (hot
path), ``operations``, ``blobs``, ``schema``, ``statements``; plus ``database``, the connection
pool and its retries (the SQLite journal's counterpart is :mod:`agentstream.sqlite_db`, shared
with the embedded log).
"""

from agentstream.journal.postgres.store import PostgresStore, from_url

__all__ = ["PostgresStore", "from_url"]
