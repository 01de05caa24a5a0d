"""How long a Kafka consumer waits for messages after a pause: the wait that idled the worker.

    python -m bench.bench_pause [--rounds 5] [--bootstrap HOST:PORT]

One Tansu broker (started for the run unless ``--bootstrap``), a topic holding 20,000 records;
a ``KafkaTransport`` consumes a batch, pauses for 0.3 s (polling, as the worker does), resumes
and times how long it takes to get the next 500 messages (one worker poll batch), ``--rounds``
times each way:

(a) ``fetch_pause_after_s=0``: every pause is librdkafka's pause at once, as before (the
    prefetched messages are thrown away and fetched again at the broker thread's next wakeup);
(b) the default: a short pause only holds messages back and keeps librdkafka's prefetch.

Prints the median wait of each way and the RESULT lines ``resume_wait_ms_librdkafka_pause`` and
``resume_wait_ms_held``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agentstream.transports.base import IgnoreRebalance
from agentstream.transports.kafka import KafkaTransport
from agentstream.transports.kafka_config import parse_kafka_url
from bench.bench_kafka import TANSU, broker, fresh_topic
from bench.results import emit


async def resume_waits(url: str, rounds: int, fetch_pause_after_s: float | None) -> list[float]:
    """Milliseconds from each resume until 500 messages were handed out."""
    topic = await fresh_topic(url, 20_000, 200, 8)
    t = KafkaTransport(parse_kafka_url(url), fetch_pause_after_s=fetch_pause_after_s)
    waits: list[float] = []
    try:
        await t.subscribe([topic], f"g-{topic}", IgnoreRebalance())
        while not await t.poll(500, 0.2):
            pass
        for _ in range(rounds):
            await t.poll(500, 0.1)
            t.pause()
            paused_until = time.monotonic() + 0.3
            while time.monotonic() < paused_until:
                await t.poll(1, 0.05)
            t.resume()
            resumed = time.perf_counter()
            got = 0
            while got < 500:
                got += len(await t.poll(500 - got, 0.01))
            waits.append((time.perf_counter() - resumed) * 1000)
    finally:
        await t.close()
    return waits


async def main(args: argparse.Namespace) -> dict[str, float]:
    with broker(args.bootstrap) as bootstrap:
        url = f"kafka://{bootstrap}?{TANSU}"
        purged = await resume_waits(url, args.rounds, 0.0)
        held = await resume_waits(url, args.rounds, None)
    results = {
        "resume_wait_ms_librdkafka_pause": statistics.median(purged),
        "resume_wait_ms_held": statistics.median(held),
    }
    for label, name in (
        ("(a) librdkafka pause at once", "resume_wait_ms_librdkafka_pause"),
        ("(b) held (the default)      ", "resume_wait_ms_held"),
    ):
        print(f"{label}: 500 messages {results[name]:8.1f} ms after resume (median)")
    emit(results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bootstrap", default=None, help="a running broker (host:port)")
    asyncio.run(main(parser.parse_args()))
