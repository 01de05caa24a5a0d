"""SQS transport throughput: agentstream with a no-op agent versus a raw receive-and-delete loop.

    python -m bench.bench_sqs [--events 2000] [--keys 100] [--stock] [--endpoint URL]

Both run against the same moto server in the same run, on a standard queue and on a FIFO queue
with ``--keys`` message groups, each with ``--events`` pre-produced JSON messages carrying an
``id`` attribute:

1. Baseline: one loop that long-polls ``ReceiveMessage`` (10 at a time), decodes each body and
   deletes the batch with ``DeleteMessageBatch``; no journal, no visibility heartbeat.
2. agentstream: the full runtime with a no-op agent on the SQS transport and a SQLite journal
   (an atomic claim and a completion record per event, per-key scheduling, batched deletes
   after the journal records completion, a visibility heartbeat).

Each measurement uses a fresh queue; the ratio is agentstream's events/s over the baseline's.

The server is started on a free loopback port: by default moto through the test launcher
``tests.sqs.moto_fifo`` (AWS-like FIFO redelivery, and no ``datetime`` clock read per queued
message, which otherwise makes every moto call cost tens of milliseconds per thousand queued
messages and swamps both loops alike); ``--stock`` starts stock moto; ``--endpoint`` uses a
running server. moto is one Python process, so absolute figures say more about moto than SQS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentstream import App, Context, RuntimeConfig
from agentstream.testing import AppHarness
from agentstream.transports.sqs import SQSTransport
from agentstream.transports.sqs_config import parse_sqs_url
from bench import workload
from bench.results import emit

CONFIG = RuntimeConfig(poll_batch=100, max_buffered=500, commit_interval_s=0.1)


@contextlib.contextmanager
def moto_server(endpoint: str | None, stock: bool) -> Iterator[str]:
    """The given endpoint, or a moto server started on a free loopback port."""
    if endpoint:
        yield endpoint
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    module = "moto.server" if stock else "tests.sqs.moto_fifo"
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def url_of(endpoint: str) -> str:
    return f"sqs://bench:bench@{endpoint.split('://', 1)[1]}?region=us-east-1&wait_time=1"


async def fresh_queue(url: str, fifo: bool, n: int, keys: int) -> str:
    name = f"bench{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    t = SQSTransport(parse_sqs_url(url))
    try:
        await t.create_queue(name, {"VisibilityTimeout": "30"})
        recs = workload.records(name, n, keys)
        await asyncio.gather(*(t.produce(recs[i : i + 100]) for i in range(0, n, 100)))
    finally:
        await t.close()
    return name


async def raw_loop(url: str, queue: str, n: int) -> float:
    """Events/s of a journal-less receive, decode, delete loop."""
    t = SQSTransport(parse_sqs_url(url))
    await t.start()
    sqs: Any = t.clients.sqs
    queue_url = (await t.clients.queue(queue)).url
    started = time.perf_counter()
    seen = 0
    while seen < n:
        response = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        for m in messages:
            json.loads(m["Body"])
        if messages:
            await sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            seen += len(messages)
    elapsed = time.perf_counter() - started
    await t.close()
    return n / elapsed


async def agentstream_run(url: str, queue: str, n: int, journal: Path) -> float:
    """Events/s of the agentstream runtime with a no-op agent."""
    app = App("bench", broker=url, store=f"sqlite:///{journal}", config=CONFIG)

    @app.agent(source=queue, concurrency=64)
    async def noop(ctx: Context, payload: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=600)
    elapsed = time.perf_counter() - started
    return n / elapsed


async def measure(endpoint: str, *, fifo: bool, n: int, keys: int) -> tuple[float, float]:
    url = url_of(endpoint)
    raw = await raw_loop(url, await fresh_queue(url, fifo, n, keys), n)
    with tempfile.TemporaryDirectory() as d:
        ours = await agentstream_run(
            url, await fresh_queue(url, fifo, n, keys), n, Path(d) / "journal.db"
        )
    return raw, ours


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--endpoint", default=None, help="a running SQS-compatible endpoint")
    parser.add_argument("--stock", action="store_true", help="start stock moto")
    args = parser.parse_args()
    server = args.endpoint or ("stock moto" if args.stock else "moto via tests.sqs.moto_fifo")
    with moto_server(args.endpoint, args.stock) as endpoint:
        print(f"{args.events} events, {args.keys} keys/groups, server: {server}")
        results: dict[str, float] = {}
        for fifo in (False, True):
            raw, ours = await measure(endpoint, fifo=fifo, n=args.events, keys=args.keys)
            kind = "FIFO" if fifo else "standard"
            print(f"{kind:>8} queue: raw receive+delete loop {raw:8.1f} events/s")
            print(f"{kind:>8} queue: agentstream no-op agent  {ours:8.1f} events/s")
            print(f"{kind:>8} queue: ratio agentstream/raw    {ours / raw:8.2f}")
            results[f"noop_sqs_{'fifo' if fifo else 'standard'}_over_raw"] = ours / raw
    emit(results)


if __name__ == "__main__":
    asyncio.run(main())
