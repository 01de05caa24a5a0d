"""Every mistake a user can make on the command line: one or two lines naming the cause and
the fix, exit code 1 (2 only for usage), within seconds, no traceback."""

from __future__ import annotations

import shutil
import socket
import uuid
from pathlib import Path

from tests.cli.helpers import agentstream, assert_one_clear_error, write_app

ROOT_FIXTURES = Path(__file__).resolve().parents[2] / "examples" / "fixtures"

PLAIN_APP = """
    from agentstream import App, Context

    app = App("plain")

    @app.agent(source="tickets")
    async def triage(ctx: Context, ticket: dict) -> dict:
        return ticket
"""


def test_an_unreachable_kafka_broker_fails_fast_in_one_line(tmp_path):
    target = write_app(tmp_path, "plain", PLAIN_APP)
    out = agentstream("run", target, "--broker", "kafka://127.0.0.1:1", cwd=tmp_path)
    assert_one_clear_error(out, "cannot reach Kafka at 127.0.0.1:1", "Connection refused")
    assert "rdkafka" not in out.stderr


def test_producing_to_an_unreachable_kafka_broker_fails_fast_in_one_line(tmp_path):
    (tmp_path / "one.jsonl").write_text('{"a": 1}\n')
    out = agentstream("produce", "t", "one.jsonl", "--broker", "kafka://127.0.0.1:1", cwd=tmp_path)
    assert_one_clear_error(out, "cannot reach Kafka at 127.0.0.1:1")


def test_a_missing_postgresql_database_is_named_by_the_server_at_once(tmp_path):
    db = f"nosuch_{uuid.uuid4().hex[:8]}"
    out = agentstream("dlq", "list", "--store", f"postgresql://postgres@127.0.0.1:5432/{db}",
                      cwd=tmp_path)  # fmt: skip
    assert_one_clear_error(out, f'database "{db}" does not exist')


def test_an_unreachable_postgresql_journal_fails_fast(tmp_path):
    target = write_app(tmp_path, "plain", PLAIN_APP)
    out = agentstream("run", target, "--store", "postgresql://postgres@127.0.0.1:1/test",
                      cwd=tmp_path)  # fmt: skip
    assert_one_clear_error(out, "cannot open the PostgreSQL journal", "Connection refused")


def test_producing_a_missing_file_names_it(tmp_path):
    out = agentstream("produce", "tickets", "nope.jsonl", cwd=tmp_path)
    assert_one_clear_error(out, "cannot read nope.jsonl", "No such file")


def test_an_unwritable_html_report_is_refused_before_the_replay_starts(tmp_path):
    target = write_app(tmp_path, "plain", PLAIN_APP)
    out = agentstream("replay", target, "--agent", "triage", "--mode", "shadow",
                      "--candidate", target, "--html", "/nonexistent-folder/r.html",
                      "--store", "sqlite:///does-not-matter.db", cwd=tmp_path)  # fmt: skip
    assert_one_clear_error(out, "--html /nonexistent-folder/r.html", "does not exist")
    assert not (tmp_path / "does-not-matter.db").exists()


def test_the_llm_simulator_on_a_port_in_use_says_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = agentstream("simulate-llm", "--port", str(port), cwd=tmp_path)
    assert_one_clear_error(out, f"port {port} on 127.0.0.1 is in use", "--port")


def test_a_second_import_of_one_history_is_refused_and_writes_nothing(tmp_path):
    history = tmp_path / "h.jsonl"
    shutil.copy(ROOT_FIXTURES / "support_triage.history.jsonl", history)
    args = ("journal", "import", "--agent", "triage", str(history), "--store", "sqlite:///j.db")
    first = agentstream(*args, cwd=tmp_path)
    assert first.code == 0, first.stderr
    again = agentstream(*args, cwd=tmp_path)
    assert_one_clear_error(again, "already in the journal", "nothing was imported")


def test_a_read_only_command_on_a_missing_journal_fails_and_creates_nothing(tmp_path):
    out = agentstream("dlq", "list", "--store", "sqlite:///typo.db", cwd=tmp_path)
    assert_one_clear_error(out, "no journal at typo.db", "--store")
    assert not (tmp_path / "typo.db").exists()
    out = agentstream("status", "--store", "sqlite:///typo.db", cwd=tmp_path)
    assert_one_clear_error(out, "no journal at typo.db")
    assert not (tmp_path / "typo.db").exists()


def test_asking_for_a_dead_letter_that_is_not_there_exits_1_not_2(tmp_path):
    history = tmp_path / "h.jsonl"
    shutil.copy(ROOT_FIXTURES / "support_triage.history.jsonl", history)
    agentstream("journal", "import", "--agent", "triage", str(history), "--store",
                "sqlite:///j.db", cwd=tmp_path)  # fmt: skip
    out = agentstream("dlq", "show", "999", "--store", "sqlite:///j.db", cwd=tmp_path)
    assert_one_clear_error(out, "no dead letter with id 999")
    out = agentstream("journal", "show", "nope", "--store", "sqlite:///j.db", cwd=tmp_path)
    assert_one_clear_error(out, "no event 'nope'")


def test_a_usage_mistake_exits_2(tmp_path):
    out = agentstream("run", "not-a-target", cwd=tmp_path)
    assert out.code == 2 and "MODULE:ATTRIBUTE" in out.stderr


def test_the_demo_never_sends_the_simulators_model_name_to_a_real_endpoint(tmp_path):
    for extra in ((), ("--model", "sim-1")):
        out = agentstream("demo", "--llm-url", "http://127.0.0.1:9/v1", *extra, cwd=tmp_path)
        assert_one_clear_error(out, "--llm-url needs --model", "'sim-1'", code=2)
        assert not (tmp_path / "agentstream-demo").exists()
