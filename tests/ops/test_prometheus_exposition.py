"""The /metrics exposition passes promtool's lint and labels every series with its agent."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from agentstream.observability import PrometheusMiddleware
from agentstream.testing import AppHarness
from tests.ops.apps import FAST, make_app, tickets
from tests.services import unavailable


async def _exposition(tmp_path) -> str:
    metrics = PrometheusMiddleware(port=0)
    app = make_app(
        f"sqlite:///{tmp_path / 'as.db'}", tmp_path, fixed=False, middleware=[metrics], config=FAST
    )
    batch = tickets(*[(f"t{i}", f"c{i % 2}", False) for i in range(4)], ("flaky1", "c1", False))
    async with AppHarness(app) as h:
        await h.produce("tickets", batch, key=lambda t: t.customer)
        await h.produce("tickets", batch[:2], key=lambda t: t.customer)  # two duplicates
        await h.wait_drained()
        url = f"http://127.0.0.1:{metrics.port}/metrics"
        return urllib.request.urlopen(url, timeout=10).read().decode()


async def test_every_agentstream_series_has_an_agent_label_and_duplicates_are_an_outcome(tmp_path):
    text = await _exposition(tmp_path)
    samples = [
        s
        for f in text_string_to_metric_families(text)
        if f.name.startswith("agentstream_")
        for s in f.samples
    ]
    assert samples
    assert [s.name for s in samples if "agent" not in s.labels] == []
    avoided = [s for s in samples if s.name == "agentstream_llm_calls_avoided_total"]
    assert avoided and all(s.labels["agent"] == "triage" for s in avoided)
    assert not [s for s in samples if s.name.startswith("agentstream_duplicates")]
    duplicates = [
        s.value
        for s in samples
        if s.name == "agentstream_deliveries_total" and s.labels["outcome"] == "duplicate"
    ]
    assert duplicates == [2.0]


async def test_promtool_check_metrics_finds_nothing_to_complain_about(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool (Debian package prometheus) is not installed")
    text = await _exposition(tmp_path)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
