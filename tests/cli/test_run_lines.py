"""``agentstream run`` says what it runs on, how it progresses and when it stops; SIGTERM and
SIGINT drain and exit 0, with one worker or several."""

from __future__ import annotations

import json
import logging
import signal

import pytest

from agentstream.cli._app import setup_logging
from tests.cli.helpers import Running, agentstream, write_app

APP = """
    import os, pathlib, time
    from agentstream import App, Context

    pathlib.Path("imported").touch()
    time.sleep(float(os.environ.get("SLOW_IMPORT_S", "0")))
    app = App("lines")

    @app.agent(source="tickets", output="decisions", identity=lambda t: t["id"])
    async def triage(ctx: Context, ticket: dict) -> dict:
        return {"id": ticket["id"], "ok": True}
"""


def produce(tmp_path, n: int) -> None:
    lines = "".join(json.dumps({"id": f"t{i}"}) + "\n" for i in range(n))
    (tmp_path / "tickets.jsonl").write_text(lines)
    out = agentstream("produce", "tickets", "tickets.jsonl", cwd=tmp_path)
    assert out.code == 0, out.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_logs_a_banner_progress_and_a_shutdown_line_and_a_stop_signal_exits_0(tmp_path, sig):
    target = write_app(tmp_path, "lines", APP)
    produce(tmp_path, 30)
    run = Running("run", target, "--progress", "0.3", cwd=tmp_path)
    try:
        run.wait_for(lambda lines: any("progress: 30 done" in line for line in lines))
        code, seconds = run.stop(sig)
    finally:
        run.kill()
    text = "\n".join(run.lines)
    assert code == 0, text
    assert seconds < 15, seconds
    [started] = [line for line in run.lines if "app 'lines' started" in line]
    assert "agents triage (tickets -> decisions, model sim-1)" in started
    assert "broker sqlite:///agentstream.db" in started
    assert "journal sqlite:///lines.journal.db" in started
    assert "no LLM provider" in started
    assert f"{sig.name}: stopping; draining" in text
    assert "stopped after" in run.lines[-1] and "30 done" in run.lines[-1], text
    assert "Traceback" not in text


def test_several_workers_name_themselves_and_all_drain_on_sigterm(tmp_path):
    target = write_app(tmp_path, "lines", APP)
    produce(tmp_path, 20)
    run = Running("run", target, "--workers", "2", "--progress", "0.3", cwd=tmp_path)
    try:
        run.wait_for(
            lambda lines: all(any(f"[worker {i}]" in x and "started" in x for x in lines)
                              for i in (1, 2))
        )  # fmt: skip
        run.wait_for(lambda lines: sum("progress:" in x for x in lines) >= 1)
        code, seconds = run.stop(signal.SIGTERM)
    finally:
        run.kill()
    text = "\n".join(run.lines)
    assert code == 0 and seconds < 20, text
    for i in (1, 2):
        assert any(f"[worker {i}]" in x and "stopped after" in x for x in run.lines), text
    assert "Traceback" not in text


def test_json_log_lines_of_several_workers_carry_the_worker_id(tmp_path):
    target = write_app(tmp_path, "lines", APP)
    produce(tmp_path, 20)
    run = Running("run", target, "--workers", "2", "--log-json", cwd=tmp_path)

    def records(lines: list[str]) -> list[dict]:
        return [json.loads(x) for x in lines if x.startswith("{")]

    try:
        run.wait_for(
            lambda lines: (
                {r.get("worker") for r in records(lines) if "started" in r["msg"]} >= {"1", "2"}
            )
        )
        code, _seconds = run.stop(signal.SIGTERM)
    finally:
        run.kill()
    assert code == 0, "\n".join(run.lines)
    # Every line a worker wrote names it, as the plain-text lines' "[worker N]" does
    assert all(r.get("worker") in {"1", "2"} for r in records(run.lines)), "\n".join(run.lines)


def test_a_stop_signal_while_the_app_is_still_loading_exits_0_at_once(tmp_path):
    target = write_app(tmp_path, "lines", APP)
    run = Running("run", target, cwd=tmp_path, env={"SLOW_IMPORT_S": "30"})
    try:
        run.wait_for(lambda _lines: (tmp_path / "imported").exists())
        code, seconds = run.stop(signal.SIGTERM)
    finally:
        run.kill()
    assert code == 0 and seconds < 10, "\n".join(run.lines)


def test_httpx_request_lines_are_off_unless_debug():
    setup_logging("INFO")
    for name in ("httpx", "httpcore", "httpx2", "httpcore2"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    setup_logging("DEBUG")
