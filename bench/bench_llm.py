"""Token-aware admission control against a rate-limited model, vs a naive consumer.

Both sides process the same events against their own fresh LLM simulator (an OpenAI-compatible
HTTP server started with ``agentstream simulate-llm``) through the OpenAI provider:

* **agentstream**: an App with admission control configured with the provider's limits
  (RPM/TPM token buckets shared through the journal, AIMD concurrency, 429s absorbed at the
  call site after Retry-After);
* **naive**: the same per-key ordering and concurrency, calling the same endpoint and retrying
  each 429 with capped exponential backoff and full jitter, without admission control.

Reported per side, measured at the simulator: achieved throughput as a fraction of the rate
limit (requests and tokens answered per minute over the busy period, divided by RPM and TPM;
the larger is the binding limit) and the share of requests answered 429.

Run (the full size takes a few minutes per side)::

    python bench/bench_llm.py                      # 2,000 events, 200 keys, RPM 600, TPM 60,000
    python bench/bench_llm.py --quick        # the same shape 5x smaller (about a minute)

``--quick`` keeps the request rate (10 per second), the latency and the number of windows the
run spans (3.3), and scales everything else down 5x: 400 events over 40 keys, limits of 120
requests and 12,000 tokens per 12 s window. (A run shorter than a few windows mostly measures
the first window's burst, which is why ``--events`` alone does not make a meaningful short run.)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

import agentstream
from agentstream import Context
from agentstream.failures import RateLimitedError
from agentstream.llm.admission import AdmissionControl, ModelLimits
from agentstream.llm.base import LLMRequest
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.testing import AppHarness
from bench.results import emit

SYSTEM = "Triage the support ticket: category, urgency, one-line summary."
WORDS = (
    "order refund delayed shipping invoice charged twice password login cancel upgrade warranty "
    "damaged missing package account subscription payment failed address change urgent"
).split()


@dataclass
class Result:
    side: str
    events: int
    wall_s: float
    requests: int
    ok: int
    rejected: int
    prompt_tokens: int
    completion_tokens: int
    busy_s: float
    rpm_fraction: float
    tpm_fraction: float
    dead_letters: int = 0

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests if self.requests else 0.0

    @property
    def limit_fraction(self) -> float:
        return max(self.rpm_fraction, self.tpm_fraction)


def make_events(n: int, keys: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": f"ticket-{i}",
            "customer": f"customer-{i % keys}",
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30))),
        }
        for i in range(n)
    ]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Simulator:
    """A simulator subprocess (``agentstream simulate-llm``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Simulator:
        a = self.args
        cmd = [sys.executable, "-m", "agentstream", "simulate-llm", "--port", str(self.port)]
        cmd += ["--rpm", str(a.rpm), "--tpm", str(a.tpm), "--latency-ms", str(a.latency_ms)]
        cmd += ["--seed", str(a.seed), "--max-completion-tokens", str(a.completion_words)]
        cmd += ["--window-s", str(a.window_s)]
        cmd += ["--log-level", "WARNING"]
        self.proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)
        async with aiohttp.ClientSession() as client:
            for _ in range(200):
                try:
                    async with client.get(f"http://127.0.0.1:{self.port}/health") as resp:
                        if resp.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("the simulator did not start")

    async def stats(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{self.port}/sim/stats") as resp,
        ):
            return dict(await resp.json())

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            await self.proc.wait()


def result_of(side: str, stats: dict[str, Any], args: argparse.Namespace, wall: float) -> Result:
    ok = int(stats.get("status_200", 0))
    busy = max(1e-9, (stats["last_ok_at"] or 0) - (stats["first_at"] or 0))
    prompt, completion = int(stats["prompt_tokens"]), int(stats["completion_tokens"])
    return Result(
        side=side,
        events=args.events,
        wall_s=wall,
        requests=int(stats.get("requests", 0)),
        ok=ok,
        rejected=int(stats.get("status_429", 0)),
        prompt_tokens=prompt,
        completion_tokens=completion,
        busy_s=busy,
        # ok - 1 intervals between the first and the last accepted request
        rpm_fraction=(ok - 1) / busy * args.window_s / args.rpm,
        tpm_fraction=(prompt + completion) / busy * args.window_s / args.tpm,
    )


async def run_agentstream(args: argparse.Namespace, events: list[dict[str, Any]]) -> Result:
    async with Simulator(args) as sim:
        with tempfile.TemporaryDirectory() as tmp:
            db = f"sqlite:///{Path(tmp) / 'bench.db'}"
            app = agentstream.App(
                "bench-llm",
                broker=db,
                llm=OpenAIProvider(base_url=sim.url, api_key="sim"),
                admission=AdmissionControl(
                    {"sim-1": ModelLimits(rpm=args.rpm, tpm=args.tpm, window_s=args.window_s)}
                ),
            )

            @app.agent(
                source="tickets",
                key=lambda p: p["customer"],
                identity=lambda p: p["id"],
                concurrency=args.concurrency,
            )
            async def triage(ctx: Context, payload: dict[str, Any]) -> str:
                reply = await ctx.llm(system=SYSTEM, user=payload["text"])
                return reply.text or ""

            started = time.monotonic()
            async with AppHarness(app) as h:
                await h.produce("tickets", events, key=lambda p: p["customer"])
                await h.wait_drained(timeout_s=3600)
            wall = time.monotonic() - started
            store = app.backends().store()
            await store.open()
            dead = (await store.counts())["dead_letters"]
            await store.close()
        result = result_of("agentstream", await sim.stats(), args, wall)
        result.dead_letters = dead
        return result


async def run_naive(args: argparse.Namespace, events: list[dict[str, Any]]) -> Result:
    """Per-key order, the same concurrency, exponential backoff on 429, no admission."""
    async with Simulator(args) as sim:
        provider = OpenAIProvider(base_url=sim.url, api_key="sim")
        by_key: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for e in events:
            by_key[e["customer"]].append(e)
        keys: asyncio.Queue[str] = asyncio.Queue()
        for k in by_key:
            keys.put_nowait(k)
        rng = random.Random(args.seed)

        async def call(event: dict[str, Any]) -> None:
            request = LLMRequest(
                model="sim-1",
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": event["text"]},
                ],
            )
            attempt = 0
            while True:
                try:
                    await provider.complete(request, step_key=event["id"])
                    return
                except RateLimitedError:
                    attempt += 1
                    await asyncio.sleep(rng.uniform(0, min(30.0, 0.5 * 2**attempt)))

        async def worker() -> None:
            while True:
                try:
                    key = keys.get_nowait()
                except asyncio.QueueEmpty:
                    return
                for event in by_key[key]:
                    await call(event)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.monotonic() - started
        await provider.aclose()
        return result_of("naive", await sim.stats(), args, wall)


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\nLLM admission control: {args.events} events over {args.keys} keys, simulator limits "
        f"{args.rpm} requests and {args.tpm} tokens per {args.window_s:g} s, median latency "
        f"{args.latency_ms:g} ms, concurrency {args.concurrency}"
    )
    head = (
        f"{'side':<12}{'wall s':>8}{'requests':>10}{'429s':>7}{'429 share':>11}"
        f"{'RPM frac':>10}{'TPM frac':>10}{'of limit':>10}{'DLQ':>6}"
    )
    print(head)
    for r in results:
        print(
            f"{r.side:<12}{r.wall_s:>8.1f}{r.requests:>10}{r.rejected:>7}"
            f"{r.rejected_share:>10.1%}{r.rpm_fraction:>10.3f}{r.tpm_fraction:>10.3f}"
            f"{r.limit_fraction:>10.3f}{r.dead_letters:>6}"
        )
    if len(results) == 2:
        ours, naive = results
        print(
            f"ratio agentstream/naive: throughput x{ours.limit_fraction / naive.limit_fraction:.2f}"
            f", wall time x{ours.wall_s / naive.wall_s:.2f}, 429 share "
            f"{ours.rejected_share:.2%} vs {naive.rejected_share:.2%}"
        )
    print(json.dumps([{**r.__dict__, "rejected_share": r.rejected_share} for r in results]))
    named: dict[str, float] = {}
    for r in results:
        side = "agentstream" if r.side == "agentstream" else "naive"
        named[f"llm_{side}_of_limit"] = r.limit_fraction
        named[f"llm_{side}_rejected_share"] = r.rejected_share
    emit(named)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--tpm", type=int, default=60_000)
    parser.add_argument("--latency-ms", type=float, default=800.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--completion-words", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--window-s",
        type=float,
        default=60.0,
        help="rate-limit window (60: per minute); shorten it with --events for a quick run",
    )
    parser.add_argument("--side", choices=("both", "agentstream", "naive"), default="both")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="400 events, 40 keys, 120 requests and 12,000 tokens per 12 s (5x smaller)",
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.keys, args.window_s = 400, 40, 12.0
        args.rpm, args.tpm = 120, 12_000
    os.environ.setdefault("OPENAI_API_KEY", "sim")
    events = make_events(args.events, args.keys, args.seed)
    results = []
    if args.side in ("both", "agentstream"):
        results.append(await run_agentstream(args, events))
    if args.side in ("both", "naive"):
        results.append(await run_naive(args, events))
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
