"""One SQLite file served by a dedicated thread, with group commit.

SQLite calls block, so none runs on the event loop: coroutines hand a function to the database
thread and await its result. Writes that queue up while a transaction is running are committed
together in the next one (group commit). A write's future resolves only after its
transaction has committed, so "awaited" always means "durable".

The WAL journal mode lets several processes (worker processes, the CLI) share one file; with
``synchronous=NORMAL`` a committed transaction survives the death of the process (``kill -9``),
though not a power cut; pass ``synchronous="FULL"`` for that.

We do not use aiosqlite: it runs one statement per thread hop and cannot batch the commits of
independent coroutines, which is where the journal's throughput comes from.

A write function must raise, if at all, before its first write (the journal's fence checks come
first); if one ever raises after writing, the whole batch is rolled back and each op re-run in a
transaction of its own, so a failed op never leaves partial writes behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agentstream.failures import ConfigurationError

T = TypeVar("T")

_STOP = object()


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    future: asyncio.Future[Any]


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, error in results:
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)


def _create_private(path: str) -> None:
    """Create the file readable by its owner only, if it does not exist yet.

    Journals hold payloads and transcripts (SQLite gives the -wal and -shm files the database
    file's permissions). An existing file is never opened here: SQLite's locks are POSIX
    record locks, and closing any descriptor of the file would release every lock this
    process's other connections hold on it, letting another process checkpoint and delete the
    write-ahead log under them (a corrupt journal).
    """
    if os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class SqliteDatabase:
    """A SQLite database file with a dedicated I/O thread and group commit.

    Args:
        path: Database file (created with its folder if missing).
        synchronous: SQLite ``synchronous`` pragma (``NORMAL`` or ``FULL``).
        busy_timeout_s: How long a write waits for another process's lock.
        max_batch: Most operations committed in one transaction.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_s: float = 30.0,
        max_batch: int = 512,
    ) -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._users = 0
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    def connect(self) -> sqlite3.Connection:
        """Open a configured connection (used by the I/O thread and by synchronous tools)."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout_s
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    async def start(self) -> None:
        """Start the I/O thread (reference-counted: shared users call start/close in pairs)."""
        self._users += 1
        if self._thread is not None:
            return
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"agentstream-sqlite:{Path(self.path).name}", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        if self._start_error is not None:
            self._thread = None
            raise self._start_error

    async def close(self) -> None:
        """Stop the I/O thread once the last user has closed."""
        self._users = max(0, self._users - 1)
        if self._users or self._thread is None:
            return
        thread, self._thread = self._thread, None
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a write transaction; return once it has committed."""
        return await self._submit(fn, write=True)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` outside any write transaction."""
        return await self._submit(fn, write=False)

    async def _submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        if self._thread is None:
            raise RuntimeError(f"SqliteDatabase({self.path!r}) is not started")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Op(fn, write, fut))
        return await fut

    def _run(self) -> None:
        try:
            conn = self.connect()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch: list[_Op] = [first]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    batch.append(nxt)
                writes = [op for op in batch if op.write]
                reads = [op for op in batch if not op.write]
                if writes:
                    self._run_writes(conn, writes)
                for op in reads:
                    self._deliver([self._call(conn, op)])
        finally:
            conn.close()

    @staticmethod
    def _call(
        conn: sqlite3.Connection, op: _Op
    ) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
        try:
            return (op.future, op.fn(conn), None)
        except BaseException as exc:
            return (op.future, None, exc)

    def _run_writes(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        # Write functions raise only before they write (a fence check is their first
        # statement), so one transaction serves the whole batch. Should one fail after writing
        # something, the batch is rolled back and every op is run again in a transaction of its
        # own, so no op ever commits another's partial work.
        results = self._transaction(conn, ops)
        if isinstance(results, BaseException):
            if len(ops) == 1:
                self._deliver([(ops[0].future, None, results)])
            else:
                for op in ops:
                    self._run_writes(conn, [op])
            return
        self._deliver(results)

    def _transaction(
        self, conn: sqlite3.Connection, ops: list[_Op]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]] | BaseException:
        """Run ops in one transaction; an op's error if it failed after writing (rolled back)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(op.future, None, exc) for op in ops]
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        for op in ops:
            before = conn.total_changes
            outcome = self._call(conn, op)
            if outcome[2] is not None and conn.total_changes != before:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                return outcome[2]
            results.append(outcome)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return [(fut, None, exc) for fut, _, _ in results]
        return results

    @staticmethod
    def _deliver(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for item in results:
            by_loop.setdefault(item[0].get_loop(), []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while we worked
                loop.call_soon_threadsafe(_resolve_all, items)


def apply_schema(
    conn: sqlite3.Connection, schema: str, nullable: Mapping[str, Sequence[str]] | None = None
) -> None:
    """Run a schema's statements in the caller's transaction and relax older tables.

    ``schema`` is ``;``-separated statements, each ``IF NOT EXISTS``. A table of an older file
    whose ``nullable`` columns (by table) still have a NOT NULL constraint is rebuilt (SQLite
    cannot drop a column's constraint in place): it is renamed, created again from its
    statement in ``schema``, filled with the old rows, and the old table is dropped with its
    indexes, which the schema's statements then create again. No view, trigger or foreign key
    may refer to a rebuilt table.
    """
    # executescript() would COMMIT the caller's transaction; run statements singly.
    statements = [st for st in schema.split(";") if st.strip()]
    for statement in statements:
        conn.execute(statement)
    rebuilt = False
    for table, columns in (nullable or {}).items():
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        if not any(row[1] in columns and row[3] for row in info):
            continue
        [create] = [st for st in statements if re.search(rf"CREATE TABLE [^(]*\b{table} \(", st)]
        names = ", ".join(f'"{row[1]}"' for row in info)
        conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_before_rebuild"')
        conn.execute(create)
        conn.execute(
            f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "{table}_before_rebuild"'
        )
        conn.execute(f'DROP TABLE "{table}_before_rebuild"')
        rebuilt = True
    if rebuilt:
        for statement in statements:
            conn.execute(statement)


class SqliteFiles(Protocol):
    """Who hands out the one :class:`SqliteDatabase` of each file in a process (``Backends``)."""

    def sqlite(self, path: str) -> SqliteDatabase:
        """The shared database object for a SQLite file."""
        ...


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite://`` URL or bare path."""
    if "://" not in url:
        return url
    rest = url.split("://", 1)[1].split("?", 1)[0]
    path = rest[1:] if rest.startswith("/") else rest
    if not path:
        raise ConfigurationError(f"{url!r}: no database file in the URL")
    return path
