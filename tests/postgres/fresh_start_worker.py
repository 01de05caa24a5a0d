"""A worker process for the fresh-schema start test: runs ``App.run``'s start-up on demand.

It reads one line per trial from stdin, ``STORE_URL BROKER_URL START_AT``, sleeps until the
wall-clock time ``START_AT`` (so every process of a trial starts together), runs an app with
admission control and circuit breakers shared through the journal until its workers are built
(the journal, the rate-limit buckets and the breakers are opened on the way), and answers one
line: ``ok``, or ``crash`` and the traceback on one line.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback

import agentstream
from agentstream import Context
from agentstream.llm.admission import AdmissionControl, ModelLimits
from agentstream.llm.breaker import CircuitBreaker


async def start_once(store_url: str, broker_url: str) -> None:
    app = agentstream.App(
        "fresh",
        broker=broker_url,
        store=store_url,
        admission=AdmissionControl({"sim-1": ModelLimits(rpm=600, tpm=60_000)}, shared="journal"),
        breaker=CircuitBreaker(shared="journal"),
    )

    @app.agent(source="in", output="out")
    async def noop(ctx: Context, payload: dict) -> None:
        return None

    stop = asyncio.Event()
    await app.run(stop=stop, install_signal_handlers=False, on_started=lambda _: stop.set())


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        store_url, broker_url, start_at = line.split()
        time.sleep(max(0.0, float(start_at) - time.time()))
        try:
            asyncio.run(start_once(store_url, broker_url))
            print("ok", flush=True)
        except BaseException:
            print("crash " + traceback.format_exc().replace("\n", " | "), flush=True)


if __name__ == "__main__":
    main()
