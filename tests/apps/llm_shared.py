"""An app for the shared-limit test: two `agentstream run` processes of it share one TPM limit.

Settings come from the environment the test sets: the simulator URL, the limit and its window,
and where bucket state lives (``journal``: shared through the SQLite journal; ``local``: each
process on its own, which is what the test guards against).
"""

from __future__ import annotations

import os

import agentstream
from agentstream import Context
from agentstream.llm.admission import AdmissionControl, ModelLimits
from agentstream.llm.openai_provider import OpenAIProvider

TPM = float(os.environ.get("LLM_SHARED_TPM", "4000"))
WINDOW_S = float(os.environ.get("LLM_SHARED_WINDOW_S", "10"))


def provider() -> OpenAIProvider:
    return OpenAIProvider(
        base_url=os.environ["AGENTSTREAM_TEST_SIM_URL"],
        api_key="sim",
        default_headers={"x-worker": str(os.getpid())},
    )


app = agentstream.App(
    "shared",
    llm=provider,
    admission=AdmissionControl(
        {"sim-1": ModelLimits(tpm=TPM, window_s=WINDOW_S)},
        shared=os.environ.get("LLM_SHARED_MODE", "journal"),
        learn_from_headers=False,
    ),
    config=agentstream.RuntimeConfig(
        session_timeout_s=3.0, heartbeat_s=0.3, commit_interval_s=0.1, shutdown_grace_s=2.0
    ),
)


@app.agent(source="work", output="done", concurrency=8, identity=lambda p: p["id"])
async def summarize(ctx: Context, payload: dict) -> str:
    return (await ctx.llm(user=payload["text"])).text or ""
