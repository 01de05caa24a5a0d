"""How long ``agentstream status`` takes on a large journal, and the plans of its count queries.

    python -m bench.bench_status [--events 200000] [--postgres DSN | --no-postgres] [--no-vacuum]

A journal (a SQLite file; a fresh schema on PostgreSQL) is created by the store, then filled
with SQL: ``--events`` events over four agents (97% completed, 1% each dead, claimed and
waiting for a signal), a 600-byte source message each, and one model call step each (a
400-byte meta, an 800-byte result; one call in 200 unpriced). PostgreSQL is vacuumed and
analysed once, as autovacuum would have (``--no-vacuum``: analysed only, so no page is marked
all-visible). The figure is the median of 5 runs of the status command's reads
(``agentstream status --json`` on the journal, in process, output discarded). Then the plan of
each query that status sent to the events or steps table is printed (recorded from the
store's ``select``, so the same script explains any version's queries).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from agentstream.backends import Backends
from agentstream.cli.status import _status
from agentstream.journal.postgres.schema import quote_ident
from bench.results import DEFAULT_POSTGRES, emit, pg_schema, scratch

AGENTS = ("triage", "fraud", "refunds", "summarize")

STATE = (
    "CASE WHEN i % 100 = 1 THEN 'dead' WHEN i % 100 = 2 THEN 'claimed' "
    "WHEN i % 100 = 3 THEN 'waiting' ELSE 'completed' END"
)
AGENT = (
    "CASE i % 4 WHEN 0 THEN 'triage' WHEN 1 THEN 'fraud' WHEN 2 THEN 'refunds' ELSE 'summarize' END"
)
META = (
    '\'{"model":"sim-1","prompt_tokens":512,"completion_tokens":43,"cost_usd":0.000684,'
    "\"cost_source\":\"' || CASE WHEN i % 200 = 7 THEN 'unpriced' ELSE 'price_table' END || "
    '\'","pad":"\' || {pad300} || \'"}\''
)

EVENTS_SQL = (
    "INSERT INTO {p}as_events (agent, event_id, state, epoch, attempts, deliveries, event_key, "
    'topic, partition, "offset", timestamp_ms, input_hash, group_id, created_at, updated_at, '
    "completed_at, msg_value, result) SELECT {agent}, 'e' || i, {state}, 1, 1, 1, "
    "'k' || (i % 500), 'tickets', i % 8, i, 0, {hash}, 'g', i, i, i, {value}, '\"ok\"' "
    "FROM {series}"
)
WAITS_SQL = (
    "INSERT INTO {p}as_waits (agent, event_id, kind, name, seq, event_key, holds_key, since, "
    "deadline, due_at) SELECT {agent}, 'e' || i, 'signal', 'approval', 1, 'k' || (i % 500), 0, "
    "i, i + 86400, i + 86400 FROM {series} WHERE i % 100 = 3"
)
STEPS_SQL = (
    "INSERT INTO {p}as_steps (agent, event_id, seq, kind, name, fingerprint, status, request, "
    "result, meta, epoch, started_at, finished_at) SELECT {agent}, 'e' || i, 0, 'llm', 'llm', "
    "{hash}, 'done', '{{\"model\":\"sim-1\"}}', {result}, {meta}, 1, i, i FROM {series}"
)


def fill_sqlite(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    series = (
        "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
        f"WHERE i < {n - 1}) SELECT i FROM s)"
    )
    common = dict(p="", agent=AGENT, state=STATE, series=series, hash="hex(randomblob(32))")
    conn.execute(EVENTS_SQL.format(value="randomblob(600)", **common))
    conn.execute(WAITS_SQL.format(**common))
    meta = META.replace("{pad300}", "hex(randomblob(150))")
    conn.execute(
        STEPS_SQL.format(result="'\"' || hex(randomblob(400)) || '\"'", meta=meta, **common)
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def fill_postgres(dsn: str, schema: str, n: int, vacuum: bool) -> None:
    p = quote_ident(schema) + "."
    series = f"generate_series(0, {n - 1}) AS i"
    rnd = "md5(i::text || 'x')"
    common = dict(p=p, agent=AGENT, state=STATE, series=series, hash=f"{rnd} || {rnd}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        value = f"convert_to(repeat({rnd}, 19), 'UTF8')"
        conn.execute(EVENTS_SQL.format(value=value, **common))
        conn.execute(WAITS_SQL.format(**common))
        meta = META.replace("{pad300}", f"repeat({rnd}, 9)")
        result = f"'\"' || repeat({rnd}, 25) || '\"'"
        conn.execute(STEPS_SQL.format(result=result, meta=meta, **common))
        for table in ("as_events", "as_steps", "as_waits"):
            conn.execute(f"{'VACUUM ANALYZE' if vacuum else 'ANALYZE'} {p}{table}")


async def status_seconds(url: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            await _status(url, url, {}, True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def plans(url: str, explain: str) -> None:
    """The plan of each distinct query ``status`` sends that reads the events or steps table.

    The queries are recorded from the store's ``select`` during one status run, whatever
    version of agentstream is installed, then explained on the same journal.
    """
    store_type = type(Backends(url, url).store())
    seen: dict[str, tuple[Any, ...]] = {}
    original = store_type.select

    async def recording(self: Any, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        seen.setdefault(sql, tuple(args))
        return await original(self, sql, args)

    store_type.select = recording  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            await _status(url, url, {}, True)
    finally:
        store_type.select = original  # type: ignore[method-assign]
    store = Backends(url, url).store()
    await store.open()
    try:
        for sql, args in seen.items():
            if "as_events" not in sql and "as_steps" not in sql:
                continue
            print(f"  {' '.join(sql.split())[:150]}")
            for row in await store.select(f"{explain} {sql}", args):  # type: ignore[attr-defined]
                print(f"      {row[-1]}")
    finally:
        await store.close()


async def open_close(url: str) -> None:
    store = Backends(url, url).store()
    await store.open()
    await store.close()


async def main(args: argparse.Namespace) -> dict[str, float]:
    n = args.events
    results: dict[str, float] = {}
    with scratch() as tmp:
        path = Path(tmp) / "status.db"
        url = f"sqlite:///{path}"
        await open_close(url)
        fill_sqlite(path, n)
        await open_close(url)  # a store that opens it (and migrates it) before the count
        results["status_seconds_sqlite"] = await status_seconds(url)
        print("SQLite plans:")
        await plans(url, "EXPLAIN QUERY PLAN")
        if args.postgres:
            with pg_schema(args.postgres) as pg:
                schema = pg.rsplit("schema=", 1)[1]
                await open_close(pg)
                fill_postgres(args.postgres, schema, n, args.vacuum)
                results["status_seconds_postgres"] = await status_seconds(pg)
                print("PostgreSQL plans:")
                await plans(pg, "EXPLAIN")
    print(f"{n} events over {len(AGENTS)} agents, one model call step each")
    for name, value in results.items():
        print(f"{name:28s} {value * 1000:10,.1f} ms")
    emit(results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", dest="postgres", action="store_const", const=None)
    parser.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="Only ANALYZE PostgreSQL's tables (a busy journal autovacuum has not caught up with).",
    )
    asyncio.run(main(parser.parse_args()))
