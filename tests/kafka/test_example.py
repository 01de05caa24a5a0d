"""The Kafka + PostgreSQL example runs end to end (its own Tansu broker, a fresh schema)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services import postgres_dsn


def test_the_kafka_example_decides_every_ticket_once_across_two_workers():
    example = Path(__file__).resolve().parents[2] / "examples" / "kafka_triage.py"
    result = subprocess.run(
        [sys.executable, str(example), "--postgres", postgres_dsn()],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "16 records (4 producer duplicates)" in result.stdout
    assert "12 tickets decided once each, 0 dead letters" in result.stdout
    refunds = [line for line in result.stdout.splitlines() if "refunds for" in line]
    n, _, _, distinct, *_ = refunds[0].split()
    assert n == distinct  # no refund twice
