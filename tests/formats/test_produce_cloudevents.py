"""``agentstream produce`` writes the CloudEvents id, and whole CloudEvents when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from agentstream.transports.embedded import read_topic


def produce(url: str, path: Path, *args: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentstream",
            "produce",
            "tickets",
            str(path),
            "--broker",
            url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.jsonl"
    path.write_text(
        "".join(json.dumps({"ticket_id": f"T-{i}", "text": "late"}) + "\n" for i in range(3))
    )
    return path


def test_the_id_option_writes_the_cloudevents_id_header(tmp_path: Path, feed: Path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    produce(url, feed, "--id", "ticket_id")
    got = read_topic(tmp_path / "log.db", "tickets")
    assert [m.header("ce_id") for m in got] == [b"T-0", b"T-1", b"T-2"]
    assert all(m.header("id") is None for m in got)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_mode_writes_events_the_official_sdk_reads(tmp_path: Path, feed: Path, mode):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    produce(url, feed, "--id", "ticket_id", "--cloudevents", mode, "--ce-type", "ticket.opened")
    got = read_topic(tmp_path / "log.db", "tickets")
    events = [
        ce_kafka.from_kafka(ce_kafka.KafkaMessage(dict(m.headers), m.key, m.value), JSONFormat())
        for m in got
    ]
    assert [e.get_id() for e in events] == ["T-0", "T-1", "T-2"]
    assert {e.get_type() for e in events} == {"ticket.opened"}
    datas = [
        e.get_data() if mode == "structured" else json.loads(m.value)
        for e, m in zip(events, got, strict=True)
    ]
    assert datas[0] == {"ticket_id": "T-0", "text": "late"}
