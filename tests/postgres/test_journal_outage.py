"""A PostgreSQL journal outage costs a few log lines, not answers bought twice.

The shared PostgreSQL server cannot be stopped, so the workers reach it through a TCP proxy
the test controls: cutting it closes every connection and refuses new ones for about 20 s,
as a stopped server would, then it listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import psycopg

from tests.llm.test_provider_outage import (
    EVENTS,
    ROOT,
    WORKERS,
    Simulator,
    free_port,
    produce,
    wait_for,
)
from tests.services import postgres_dsn, start_logged, stop_processes

OUTAGE_S = 20.0


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut (connections dropped, port closed)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links.discard(writer)
        self._links.discard(up_writer)


def journal_counts(dsn: str, schema: str) -> dict[str, int]:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT state, count(*) FROM {schema}.as_events GROUP BY state "
                f"UNION ALL SELECT 'dead_letters', count(*) FROM {schema}.as_dead_letters "
                f"UNION ALL SELECT 'failures', count(*) FROM {schema}.as_failures "
                f"UNION ALL SELECT 'max_attempts', max(attempts) FROM {schema}.as_events"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {str(k): int(v or 0) for k, v in rows}


async def test_a_postgres_journal_outage_is_ridden_out_without_buying_answers_twice(
    tmp_path: Path,
) -> None:
    dsn = postgres_dsn()
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    proxy = CuttableProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    await proxy.start()
    schema = f"outage_{uuid.uuid4().hex[:8]}"
    proxied = psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=proxy.port)
    user = info.get("user", "postgres")
    store_url = f"postgresql://{user}@127.0.0.1:{proxy.port}/{info['dbname']}?schema={schema}"
    del proxied
    sim = Simulator(free_port(), "sim-1", tmp_path / "calls.db")
    sim.start()
    env = {
        **os.environ,
        "AGENTSTREAM_BROKER": f"sqlite:///{tmp_path / 'broker.db'}",
        "AGENTSTREAM_STORE": store_url,
        "OUTAGE_SIM_URL": sim.url,
        "OUTAGE_EFFECTS": str(tmp_path / "effects.db"),
    }

    def completed() -> int:
        return journal_counts(dsn, schema).get("completed", 0)

    try:
        await produce(env["AGENTSTREAM_BROKER"])
        cmd = [sys.executable, "-m", "agentstream", "run", "tests.apps.outage_app:app"]
        cmd += ["--log-level", "WARNING"]
        logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
        procs = [await start_logged(cmd, path, env=env, cwd=ROOT) for path in logs]
        try:
            await wait_for(lambda: completed() >= 30, 90, "the first completions", procs)
            await proxy.cut()
            cut_at = time.monotonic()
            await asyncio.sleep(OUTAGE_S)
            await proxy.start()
            await wait_for(lambda: completed() >= EVENTS, 150, "every completion", procs)
            print(f"all completed {time.monotonic() - cut_at:.0f}s after the cut")
        finally:
            await stop_processes(procs)
    finally:
        sim.kill()
        await proxy.cut()
    counts = journal_counts(dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        failures = conn.execute(
            f"SELECT failure_class, error_type, message FROM {schema}.as_failures"
        ).fetchall()
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    assert counts.get("completed") == EVENTS and counts.get("dead_letters", 0) == 0, counts
    assert not failures, failures
    effects = sqlite3.connect(tmp_path / "effects.db")
    per_event = effects.execute(
        "SELECT event_id, count(*) FROM effects GROUP BY event_id"
    ).fetchall()
    effects.close()
    assert len(per_event) == EVENTS and all(n == 1 for _, n in per_event)
    calls = sqlite3.connect(tmp_path / "calls.db")
    bought = calls.execute(
        "SELECT step_key, count(*) FROM sim_calls WHERE status = 200 GROUP BY step_key"
    ).fetchall()
    calls.close()
    twice = [k for k, n in bought if n > 1]
    assert len(bought) == EVENTS and not twice, f"{len(twice)} answers bought twice"
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    lines = [line for line in text.splitlines() if line.strip()]
    assert "unavailable" in text, "the outage was not seen"
    assert "Traceback" not in text, text[-4000:]
    assert len(lines) <= 15 * WORKERS, "\n".join(lines[-80:])
    print(f"{len(lines)} log lines, attempts at most {counts.get('max_attempts')}:")
    print("\n".join(lines))
