"""The SQLite journal: the embedded default, one file, no server.

``store`` holds the hot path (claims, steps, completion, outbox), ``operations`` redrive,
parking, retention and shadow runs, ``blobs`` content-addressed blobs, ``schema`` the tables;
reads are :class:`~agentstream.journal.reads.JournalReads`. The same files, with the same
roles, make up :mod:`agentstream.journal.postgres`.
"""

from agentstream.journal.sqlite.store import SqliteStore, from_url

__all__ = ["SqliteStore", "from_url"]
