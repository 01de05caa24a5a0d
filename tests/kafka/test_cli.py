"""``agentstream produce``, ``run --workers N`` and ``status`` against a kafka:// broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from agentstream.journal.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 60


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentstream", *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def completed(db: Path) -> int:
    store = SqliteStore(db)
    await store.open()
    try:
        return (await store.counts("work"))["completed"]
    finally:
        await store.close()


async def test_produce_run_with_two_workers_and_status_on_kafka(kafka_url, tmp_path, name):
    env = {**os.environ, "KAFKA_TEST_NAME": name, "KAFKA_TEST_WORK": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    db = tmp_path / "journal.db"
    store = f"sqlite:///{db}"
    lines = tmp_path / "tickets.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"ticket_id": f"T{i:03d}", "customer_id": f"c{i % 12}"}) + "\n"
            for i in range(EVENTS)
        )
    )
    # Given tickets produced from a JSON-lines file to a topic that does not exist yet
    out = cli(
        "produce", f"{name}-tickets", str(lines), "--key", "customer_id", "--id", "ticket_id",
        "--broker", kafka_url, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"produced {EVENTS} record(s)" in out.stdout
    # When two worker processes run the app in one consumer group
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentstream", "run", "tests.kafka.cli_app:app", "--workers", "2",
         "--broker", kafka_url, "--store", store],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not db.exists() or await completed(db) < EVENTS:
            assert time.monotonic() < deadline and proc.poll() is None, "workers did not finish"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
    # Then both workers took part and each ticket was handled exactly once
    runs = [line.split() for line in (tmp_path / "runs.txt").read_text().splitlines()]
    assert Counter(t for t, _ in runs) == Counter(f"T{i:03d}" for i in range(EVENTS))
    assert len({pid for _, pid in runs}) == 2
    # And status shows the journal and the group's committed offsets per partition
    status = cli(
        "status", "tests.kafka.cli_app:app", "--broker", kafka_url, "--store", store,
        env={**env, "COLUMNS": "200"}, cwd=tmp_path,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "consumer lag on" in status.stdout
    rows = [ln for ln in status.stdout.splitlines() if f"{name}-tickets[" in ln]
    assert len(rows) == 8  # the topic was created with the default 8 partitions
    cells = [ln.split("│")[4].strip() for ln in rows]
    assert sum(int(c) for c in cells if c != "-") == EVENTS  # "-": a partition without records
