"""Many workers starting at the same instant on a fresh PostgreSQL schema all start.

Every schema object a worker creates (the journal's tables, the rate-limit buckets, the circuit
breakers) must be created under the journal's migration lock: a ``CREATE TABLE IF NOT EXISTS``
run by two processes at once can fail with ``UniqueViolation`` on ``pg_type``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from tests.services import postgres_dsn

REPO = Path(__file__).resolve().parents[2]
WORKERS = 5
TRIALS = 20


def _readline(proc: subprocess.Popen[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert time.monotonic() < deadline, "a worker did not answer in time"
    return line.strip()


def test_five_workers_started_at_once_on_a_fresh_schema_never_crash(pg_schema, tmp_path):
    # Given five worker processes, ready to start an app on a journal URL we give them
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.postgres.fresh_start_worker"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    schemas = [f"{pg_schema}_{i}" for i in range(TRIALS)]
    dsn = postgres_dsn()
    answers: list[str] = []
    try:
        for proc in procs:
            assert _readline(proc, 60) == "ready"
        # When, twenty times, all five start at the same instant on a schema no one created yet
        for i, schema in enumerate(schemas):
            store = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
            start_at = time.time() + 0.5
            for n, proc in enumerate(procs):
                broker = f"sqlite:///{tmp_path / f'log-{i}-{n}-{uuid.uuid4().hex[:6]}.db'}"
                assert proc.stdin is not None
                proc.stdin.write(f"{store} {broker} {start_at}\n")
                proc.stdin.flush()
            answers += [_readline(proc, 60) for proc in procs]
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
    # Then every start succeeded
    crashes = [a for a in answers if a != "ok"]
    assert not crashes, f"{len(crashes)} of {len(answers)} starts crashed: {crashes[0][:2000]}"
    assert len(answers) == WORKERS * TRIALS
