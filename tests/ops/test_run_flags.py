"""``agentstream run --metrics-port --log-json``: a worker process serves its metrics and writes
JSON log lines naming the event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agentstream.testing import AppHarness
from tests.ops.apps import make_app, tickets
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def scrape_until(port: int, name: str, want: float, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            text = text.decode()
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith(name + "{")
            )
            if total >= want:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} did not reach {want}:\n{text[-2000:]}")


async def test_a_worker_process_serves_metrics_and_logs_json_lines_naming_the_event(tmp_path):
    db = tmp_path / "as.db"
    port = free_port()
    env = {**os.environ, "OPS_TEST_DB": str(db), "OPS_TEST_WORK": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentstream",
            "run",
            "tests.ops.cli_app:app",
            "--metrics-port",
            str(port),
            "--log-json",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        producer = AppHarness(make_app(f"sqlite:///{db}", tmp_path, fixed=False))
        await producer.produce(
            "tickets",
            tickets(("ok1", "amy", False), ("ok2", "bo", False), ("bug1", "cy", True)),
            key=lambda t: t.customer,
        )
        text = scrape_until(port, "agentstream_deliveries_total", 3)
        assert (
            'agentstream_dead_letters_total{agent="triage",failure_class="agent_error"} 1.0' in text
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [dead] = [x for x in lines if "dead-lettered" in x["msg"]]
    assert (dead["event_id"], dead["key"], dead["agent"]) == ("bug1", "cy", "triage")
