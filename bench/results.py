"""Machine-readable results: ``RESULT <name> <value>`` lines at the end of every benchmark.

``python -m bench`` collects them from every benchmark it runs, so runs can be compared over
time with a grep.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def emit(results: dict[str, float]) -> None:
    """Print one ``RESULT name value`` line per figure (whole numbers from 100 up)."""
    for name, value in results.items():
        print(f"RESULT {name} {value:.0f}" if abs(value) >= 100 else f"RESULT {name} {value:.3g}")


def journal_url(dsn: str, schema: str) -> str:
    """A PostgreSQL journal URL on ``schema`` of ``dsn``."""
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


@contextlib.contextmanager
def pg_schema(dsn: str) -> Iterator[str]:
    """A journal URL on a fresh schema of ``dsn``, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        yield journal_url(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_schema_bytes(dsn: str, url: str) -> int:
    """Bytes of every table of the schema in ``url`` (indexes and TOAST included)."""
    schema = url.rpartition("schema=")[2]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            (schema,),
        ).fetchone()
    return int(row[0]) if row else 0


def sqlite_bytes(path: Path) -> int:
    """Bytes of a SQLite file in use (after folding the WAL in; free pages not counted)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        conn.close()
    return int((pages - free) * page)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary directory for a benchmark's SQLite files."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)
