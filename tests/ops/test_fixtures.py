"""The examples' checked-in histories replay byte for byte against their code, and a shadow run
of the refund desk's candidate renders a report that headless Chromium shows."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentstream.cli import cli
from agentstream.cli._app import load_app
from agentstream.journal.sqlite import SqliteStore
from agentstream.replay import replay_recorded, replay_shadow
from agentstream.replay.history import export_history, import_history
from agentstream.replay.report import report_html, report_json
from tests.ops.apps import cli_run
from tests.services import IN_CI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HISTORY = EXAMPLES / "fixtures" / "refund_desk.history.jsonl"


@pytest.fixture
def examples_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the examples' stand-in services keep files in the working folder
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
async def recorded_store(tmp_path: Path):
    store = SqliteStore(tmp_path / "replay.db")
    await store.open()
    assert await import_history(store, "triage", HISTORY) == 40
    yield store
    await store.close()


@pytest.mark.parametrize(
    ("example", "agent"),
    [("support_triage", "triage"), ("refund_desk", "triage"), ("fraud_review", "review")],
)
async def test_each_example_s_recorded_history_replays_byte_for_byte(
    examples_on_path, tmp_path, example, agent
):
    history = EXAMPLES / "fixtures" / f"{example}.history.jsonl"
    store = SqliteStore(tmp_path / "replay.db")
    await store.open()
    try:
        loaded = await import_history(store, agent, history)
        app = load_app(f"examples.{example}:app")
        report = await replay_recorded(app, agent, store)
        again = tmp_path / "again.jsonl"
        await export_history(store, agent, again)
    finally:
        await store.close()
    bad = [r for r in report.results if r.status != "identical"]
    assert not bad, bad[:3]
    assert len(report.results) == loaded > 0 and report.model_calls == 0
    # export of the imported history gives the file back: the fixture round-trips exactly
    assert sorted(again.read_text().splitlines()) == sorted(history.read_text().splitlines())


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_shadow_report_renders_in_headless_chromium_with_its_summary_numbers(
    examples_on_path, recorded_store, tmp_path
):
    binary = _chromium()
    if binary is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    live = load_app("examples.refund_desk:app")
    candidate = load_app("examples.refund_desk_candidate:app")
    report = await replay_shadow(live, "triage", candidate, recorded_store, run_id="ci-run")
    s = report.summary
    tickets = [json.loads(line) for line in HISTORY.read_text().splitlines()]
    enterprise = {
        t["event_id"]
        for t in tickets
        if json.loads(base64.b64decode(t["message"]["value"]))["tier"] == "enterprise"
    }
    changed = {e["event_id"] for e in report.entries if e["decision"] == "different"}
    assert changed == enterprise and s["different"] == len(enterprise) > 0
    assert s["effects_suppressed"] + s["effects_answered"] > 0
    page = tmp_path / "report.html"
    page.write_text(report_html(report), encoding="utf-8")
    (tmp_path / "report.json").write_text(json.dumps(report_json(report)))
    shutil.copy(page, Path(os.environ.get("AGENTSTREAM_REPORT_COPY", tmp_path / "copy.html")))

    shot = tmp_path / "report.png"
    result = _run_chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        page.as_uri(),
    )
    assert shot.exists() and shot.stat().st_size > 10_000, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.copy(shot, Path(os.environ.get("AGENTSTREAM_SCREENSHOT_COPY", tmp_path / "copy.png")))
    dom = _run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", page.as_uri()).stdout

    def shown(ident: str) -> str:
        match = re.search(rf'id="{ident}">([^<]*)<', dom)
        assert match, f"#{ident} not on the page"
        return match[1]

    assert shown("events") == "40"
    assert shown("different") == str(len(enterprise))
    assert shown("divergence-rate") == f"{len(enterprise) / 40:.1%}"
    assert shown("cost-delta") == f"${s['cost_delta_usd']:+.6f}"
    assert shown("effects-suppressed") == str(s["effects_suppressed"])
    assert dom.count('class="different"') == len(enterprise)


async def test_the_replay_command_verifies_the_history_and_writes_shadow_reports(
    examples_on_path, tmp_path
):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    out = await cli_run("journal", "import", "--agent", "triage", str(HISTORY), "--store", url)
    assert "imported 40 event(s)" in out
    out = await cli_run(
        "replay",
        "examples.refund_desk:app",
        "--agent",
        "triage",
        "--mode",
        "recorded",
        "--store",
        url,
    )
    assert "40 identical, 0 different, 0 failed, 0 skipped; 0 model call(s)" in " ".join(
        out.split()
    )
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    out = await cli_run(
        "replay",
        "examples.refund_desk:app",
        "--agent",
        "triage",
        "--mode",
        "shadow",
        "--candidate",
        "examples.refund_desk_candidate:app",
        "--run-id",
        "cli-run",
        "--json-out",
        str(json_path),
        "--html",
        str(html_path),
        "--store",
        url,
    )
    report = json.loads(json_path.read_text())
    assert report["run_id"] == "cli-run" and report["summary"]["events"] == 40
    assert f"{report['summary']['different']} of 40 decisions changed" in " ".join(out.split())
    assert 'id="divergence-rate"' in html_path.read_text()
    # the changed example code fails recorded replay, with exit code 1
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["replay", "examples.refund_desk_candidate:app", "--agent", "triage", "--store", url],
    )
    assert result.exit_code == 1 and "0 model call(s)" in " ".join(result.stdout.split())
