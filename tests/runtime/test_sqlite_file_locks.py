"""A second connection in one process must not drop that process's locks on the journal file.

SQLite's locks are POSIX record locks, which belong to the process and are all released when
the process closes ANY descriptor of the file. A worker opens several connections to one
journal (the database thread, the lease keeper, the breaker and rate-limit stores); if opening
one of them closed a descriptor of the file, the other process sharing the journal would see
no reader, take the file for unused and checkpoint and delete the write-ahead log under the
first: "database disk image is malformed" (seen in the provider and journal outage tests).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentstream.sqlite_db import SqliteDatabase

OTHER_PROCESS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM t").fetchall()
conn.close()  # the last connection to a WAL file checkpoints it and deletes the log
"""


def test_opening_another_connection_keeps_the_process_s_hold_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    db = SqliteDatabase(path)
    # Given a connection of this process reading the journal, with rows still in the log
    first = db.connect()
    first.execute("PRAGMA wal_autocheckpoint=0")
    first.execute("CREATE TABLE t (x)")
    first.execute("INSERT INTO t VALUES (1)")
    first.execute("SELECT count(*) FROM t").fetchall()
    wal = Path(f"{path}-wal")
    assert wal.exists()
    # When the process opens a second connection (as the lease keeper does)
    second = db.connect()
    # And another process opens and closes the file
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], check=True, timeout=30)
    # Then that process saw this one still using the file: the log was not taken away
    assert wal.exists(), "the other process took the journal for unused and removed its log"
    assert first.execute("SELECT count(*) FROM t").fetchone() == (1,)
    second.close()
    first.close()


def test_a_new_journal_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    SqliteDatabase(path).connect().close()
    assert path.stat().st_mode & 0o777 == 0o600
