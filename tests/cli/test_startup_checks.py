"""Start-up checks: a misconfigured app says what is wrong and how to fix it, in one line,
before it touches an event."""

from __future__ import annotations

import time
import uuid

import pytest

import agentstream
from agentstream.failures import ConfigurationError
from agentstream.testing import AppHarness
from tests.cli.helpers import FAST_S, assert_one_clear_error, write_app
from tests.cli.helpers import agentstream as run_cli
from tests.sqs.conftest import make_queue

NO_PROVIDER = """
    from agentstream import App, Context

    app = App("noprov")

    @app.agent(source="tickets")
    async def triage(ctx: Context, ticket: dict) -> str:
        return (await ctx.llm.complete(user=ticket["text"])).text
"""


def test_an_agent_calling_ctx_llm_without_a_provider_is_refused_at_start_up(tmp_path):
    target = write_app(tmp_path, "noprov", NO_PROVIDER)
    out = run_cli("run", target, cwd=tmp_path)
    assert_one_clear_error(out, "agent 'triage' calls ctx.llm", "no LLM provider", "llm=")


def test_a_postgresql_journal_without_the_postgres_extra_names_the_pip_command(tmp_path):
    target = write_app(
        tmp_path,
        "pgapp",
        """
        from agentstream import App, Context

        app = App("pg", store="postgresql://127.0.0.1/test")

        @app.agent(source="tickets")
        async def triage(ctx: Context, ticket: dict) -> dict:
            return ticket
        """,
    )
    out = run_cli("run", target, cwd=tmp_path, hide=("psycopg", "psycopg_pool"))
    assert_one_clear_error(out, "pip install 'agentstream[postgres]'", "postgresql://")


def test_a_kafka_broker_without_the_kafka_extra_names_the_pip_command(tmp_path):
    out = run_cli("produce", "t", "-", "--broker", "kafka://127.0.0.1:9092", cwd=tmp_path,
                  hide=("confluent_kafka",))  # fmt: skip
    assert_one_clear_error(out, "pip install 'agentstream[kafka]'")


def test_metrics_port_without_the_observability_extra_names_the_pip_command(tmp_path):
    target = write_app(tmp_path, "noprov", NO_PROVIDER)
    out = run_cli("run", target, "--metrics-port", "9999", cwd=tmp_path,
                  hide=("prometheus_client",))  # fmt: skip
    assert_one_clear_error(out, "--metrics-port", "pip install 'agentstream[observability]'")


def test_an_app_importing_the_anthropic_provider_without_its_extra_names_the_pip_command(
    tmp_path,
):
    target = write_app(
        tmp_path,
        "anth",
        """
        from agentstream import App
        from agentstream.llm.anthropic_provider import AnthropicProvider

        app = App("anth", llm=AnthropicProvider())
        """,
    )
    out = run_cli("run", target, cwd=tmp_path, hide=("anthropic",))
    assert_one_clear_error(out, "pip install 'agentstream[anthropic]'")


async def test_a_dead_letter_queue_that_does_not_exist_is_refused_at_start_up(
    sqs_endpoint, tmp_path
):
    sqs_url = f"sqs://test:test@{sqs_endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"
    qname = f"q{uuid.uuid4().hex[:10]}"
    await make_queue(sqs_url, qname)
    app = agentstream.App("dlqcheck", broker=sqs_url, store=f"sqlite:///{tmp_path / 'j.db'}")

    @app.agent(source=qname, dead_letter=f"{qname}-missing-dlq")
    async def triage(ctx: agentstream.Context, ticket: dict) -> dict:
        return ticket

    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"dead_letter='.*-missing-dlq'.*does not exist"):
        async with AppHarness(app):
            pass
    assert time.monotonic() - started < FAST_S


async def test_an_output_topic_that_may_not_be_created_is_refused_at_start_up(
    kafka_bootstrap, tmp_path
):
    from tests.conformance.conftest import KAFKA_TEST_SETTINGS

    url = f"kafka://{kafka_bootstrap}?{KAFKA_TEST_SETTINGS}&agentstream.create_topics=false"
    app = agentstream.App("outcheck", broker=url, store=f"sqlite:///{tmp_path / 'j.db'}")

    @app.agent(source="outcheck-in", output="outcheck-nowhere")
    async def triage(ctx: agentstream.Context, ticket: dict) -> dict:
        return ticket

    with pytest.raises(ConfigurationError, match=r"output='outcheck-nowhere'.*does not exist"):
        async with AppHarness(app):
            pass


def test_the_embedded_defaults_work_with_no_extra_installed(tmp_path):
    # Given a machine where none of the optional extras is installed
    hidden = ("confluent_kafka", "psycopg", "psycopg_pool", "aiobotocore", "botocore")
    hidden += ("anthropic", "prometheus_client", "opentelemetry")
    target = write_app(tmp_path, "bare", NO_PROVIDER.replace("noprov", "bare"))
    assert target
    (tmp_path / "tickets.jsonl").write_text('{"text": "hi"}\n')
    # When the user produces to the embedded log
    out = run_cli("produce", "tickets", "tickets.jsonl", cwd=tmp_path, hide=hidden)
    # Then agentstream imports and works (the observability names load only when used)
    assert out.code == 0, out.stderr[-3000:]
    assert "produced 1 record(s)" in out.stdout
