"""Kafka transport throughput and the value of per-key ordering, on one Tansu broker in one run.

    python -m bench.bench_kafka [--events 20000] [--keys 200] [--partitions 8]
        [--llm-events 1000] [--postgres DSN | --no-postgres] [--bootstrap HOST:PORT]

Throughput, ``--events`` pre-produced JSON records over ``--keys`` keys and ``--partitions``
partitions, a fresh topic and group per measurement:

(a) a raw confluent-kafka loop: consume batches of up to 500, decode each JSON value, commit the
    batch's offsets synchronously; no journal;
(b) agentstream with a no-op agent on the Kafka transport and the SQLite journal (an atomic claim
    and a completion record per event, per-key scheduling, watermark commits);
(c) the same on the PostgreSQL journal (``--postgres DSN``, default the local ``test`` database;
    a fresh schema, dropped afterwards);
(j) the journal's own limit on each store (``Store.claim_many`` + ``complete_many`` in batches
    of 500, :mod:`bench.journal_limit`), so (b) and (c) are also printed as fractions of it.

Ordering, ``--llm-events`` records over 200 keys and 4 partitions, each needing one model call
with a constant 200 ms latency:

(d) agentstream with per-key ordering and concurrency 64 (the in-process simulated model);
(e) a partition-serial consumer: one event at a time per partition, as ordered consumers work
    today (the same 200 ms wait per event).

The group join is not timed: each rate runs from the first event handled to the last one done
and committed. Prints b/a, c/a and d/e. The broker is started on a free loopback port unless
``--bootstrap`` names a running one; Tansu's memory storage keeps everything in one process,
so absolute figures say more about the machine than about Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaPartition

from agentstream import App, Context, RuntimeConfig
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig
from agentstream.testing import AppHarness
from agentstream.transports.kafka import KafkaTransport
from agentstream.transports.kafka_config import parse_kafka_url
from bench import workload
from bench.journal_limit import journal_limit
from bench.results import DEFAULT_POSTGRES, emit, pg_schema

# Tansu makes a group join wait about half of session.timeout.ms (see docs/kafka.md).
TANSU = "session.timeout.ms=6000&heartbeat.interval.ms=1000&fetch.wait.max.ms=10"
CONFIG = RuntimeConfig(poll_batch=500, max_buffered=5000, commit_interval_s=0.2)
LLM_LATENCY_S = 0.2


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given bootstrap address, or a Tansu broker on a free loopback port."""
    if bootstrap:
        yield bootstrap
        return
    from tests.services import tansu_broker

    with tansu_broker() as started:
        yield started


async def fresh_topic(url: str, n: int, keys: int, partitions: int) -> str:
    """A new topic holding ``n`` records."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    t = KafkaTransport(parse_kafka_url(url))
    try:
        await t.create_topic(topic, partitions)
        recs = workload.records(topic, n, keys)
        for i in range(0, n, 1000):
            await t.produce(recs[i : i + 1000])
    finally:
        await t.close()
    return topic


def raw_loop(bootstrap: str, topic: str, n: int) -> float:
    """(a) Events/s of a journal-less consume, decode, commit loop (runs in a thread)."""
    consumer = Consumer(
        {
            **parse_kafka_url(f"kafka://{bootstrap}?{TANSU}").consumer_config(f"raw-{topic}"),
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    first: float | None = None
    try:
        while seen < n:
            batch = [m for m in consumer.consume(500, 0.1) if m.error() is None]
            if not batch:
                continue
            first = first or time.perf_counter()
            last: dict[tuple[str, int], int] = {}
            for m in batch:
                json.loads(m.value() or b"")
                last[(m.topic() or "", m.partition() or 0)] = (m.offset() or 0) + 1
            consumer.commit(
                offsets=[KafkaPartition(t, p, o) for (t, p), o in last.items()],
                asynchronous=False,
            )
            seen += len(batch)
        assert first is not None
        return n / (time.perf_counter() - first)
    finally:
        consumer.close()


NOOP_CPU_US: dict[str, float] = {}
"""Worker process CPU (every thread, librdkafka's included) per no-op event, by journal."""


async def agentstream_noop(url: str, store: str, topic: str, n: int) -> float:
    """(b)/(c) Events/s of the runtime with a no-op agent, journaling in ``store``."""
    app = App(f"bench-{topic}", broker=url, store=store, config=CONFIG)
    first: list[tuple[float, float]] = []

    @app.agent(source=topic, key=lambda p: p["key"], concurrency=64)
    async def noop(ctx: Context, payload: dict[str, Any]) -> None:
        if not first:
            first.append((time.perf_counter(), time.process_time()))

    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=600)
        wall, cpu = time.perf_counter(), time.process_time()
    NOOP_CPU_US[store.partition(":")[0]] = (cpu - first[0][1]) / n * 1e6
    return n / (wall - first[0][0])


def wal_position(dsn: str) -> tuple[int, int]:
    """The server's WAL position in bytes and the database's committed transactions so far."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, xact_commit FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def ordered_agentstream(url: str, store: str, topic: str, n: int) -> float:
    """(d) Events/s with per-key ordering, concurrency 64 and a 200 ms model call per event."""
    provider = SimulatedProvider(
        SimulatorConfig(latency_ms=LLM_LATENCY_S * 1000, latency_sigma=0.0, seed=1)
    )
    app = App(f"bench-{topic}", broker=url, store=store, config=CONFIG, llm=provider)
    first: list[float] = []

    @app.agent(source=topic, key=lambda p: p["key"], concurrency=64)
    async def decide(ctx: Context, payload: dict[str, Any]) -> str:
        if not first:
            first.append(time.perf_counter())
        return (await ctx.llm(user=payload["text"])).text or ""

    async with AppHarness(app) as h:
        await h.wait_drained(timeout_s=600)
        return n / (time.perf_counter() - first[0])


async def partition_serial(bootstrap: str, topic: str, n: int) -> float:
    """(e) Events/s of a consumer that handles one event at a time per partition."""
    consumer = Consumer(
        parse_kafka_url(f"kafka://{bootstrap}?{TANSU}").consumer_config(f"serial-{topic}")
    )
    thread = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(thread, consumer.subscribe, [topic])
    queues: dict[int, asyncio.Queue[Any]] = {}
    done: dict[int, int] = {}
    handled = 0
    first: float | None = None

    async def serve(partition: int, queue: asyncio.Queue[Any]) -> None:
        nonlocal handled
        while True:
            message = await queue.get()
            json.loads(message.value())
            await asyncio.sleep(LLM_LATENCY_S)  # the model call, one at a time per partition
            done[partition] = message.offset() + 1
            handled += 1

    tasks: list[asyncio.Task[None]] = []
    try:
        while handled < n:
            batch = await loop.run_in_executor(thread, consumer.consume, 500, 0.05)
            for m in batch:
                if m.error() is not None:
                    continue
                first = first or time.perf_counter()
                p = m.partition()
                if p not in queues:
                    queues[p] = asyncio.Queue()
                    tasks.append(asyncio.create_task(serve(p, queues[p])))
                queues[p].put_nowait(m)
            if done:
                offsets = [KafkaPartition(topic, p, o) for p, o in done.items()]
                await loop.run_in_executor(
                    thread, functools.partial(consumer.commit, offsets=offsets, asynchronous=False)
                )
        assert first is not None
        return n / (time.perf_counter() - first)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.run_in_executor(thread, consumer.close)
        thread.shutdown()


async def main(args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        url = f"kafka://{bootstrap}?{TANSU}"
        print(f"Tansu at {bootstrap}; {args.events} events, {args.keys} keys, "
              f"{args.partitions} partitions")  # fmt: skip
        topic = await fresh_topic(url, args.events, args.keys, args.partitions)
        results["a"] = await asyncio.to_thread(raw_loop, bootstrap, topic, args.events)
        print(f"(a) raw confluent-kafka consume+commit   {results['a']:9.1f} events/s")
        topic = await fresh_topic(url, args.events, args.keys, args.partitions)
        store = f"sqlite:///{Path(tmp) / 'journal.db'}"
        results["b"] = await agentstream_noop(url, store, topic, args.events)
        results["jb"] = await journal_limit(f"sqlite:///{Path(tmp) / 'limit.db'}", args.events)
        print(f"(b) agentstream no-op, SQLite journal    {results['b']:9.1f} events/s")
        print(f"    ratio b/a                            {results['b'] / results['a']:9.2f}")
        print(f"(j) SQLite journal's own limit           {results['jb']:9.1f} events/s")
        print(f"    ratio b/j                            {results['b'] / results['jb']:9.2f}")
        if args.postgres:
            topic = await fresh_topic(url, args.events, args.keys, args.partitions)
            with pg_schema(args.postgres) as journal:
                wal0, commits0 = wal_position(args.postgres)
                results["c"] = await agentstream_noop(url, journal, topic, args.events)
                wal1, commits1 = wal_position(args.postgres)
            results["wal"] = (wal1 - wal0) / args.events
            results["commits"] = (commits1 - commits0) / args.events
            with pg_schema(args.postgres) as journal:
                results["jc"] = await journal_limit(journal, args.events)
            print(f"(c) agentstream no-op, PostgreSQL        {results['c']:9.1f} events/s")
            print(f"    ratio c/a                            {results['c'] / results['a']:9.2f}")
            print(f"(j) PostgreSQL journal's own limit       {results['jc']:9.1f} events/s")
            print(f"    ratio c/j                            {results['c'] / results['jc']:9.2f}")
            print(f"    WAL per event (server-wide)          {results['wal']:9.0f} bytes")
            print(f"    commits per event (database-wide)    {results['commits']:9.3f}")
        else:
            print("(c) skipped (--no-postgres)")
        n = args.llm_events
        print(f"ordering: {n} events, 200 keys, 4 partitions, {LLM_LATENCY_S * 1000:.0f} ms model")
        topic = await fresh_topic(url, n, 200, 4)
        store = f"sqlite:///{Path(tmp) / 'ordered.db'}"
        results["d"] = await ordered_agentstream(url, store, topic, n)
        print(f"(d) agentstream, per-key order, conc. 64 {results['d']:9.1f} events/s")
        topic = await fresh_topic(url, n, 200, 4)
        results["e"] = await partition_serial(bootstrap, topic, n)
        print(f"(e) partition-serial consumer            {results['e']:9.1f} events/s")
        print(f"    ratio d/e                            {results['d'] / results['e']:9.2f}")
    named = {
        "raw_kafka_events_per_s": results["a"],
        "noop_kafka_sqlite_events_per_s": results["b"],
        "journal_limit_sqlite_events_per_s": results["jb"],
        "noop_over_journal_limit_kafka_sqlite": results["b"] / results["jb"],
    }
    if "c" in results:
        named["noop_kafka_postgres_events_per_s"] = results["c"]
        named["journal_limit_postgres_events_per_s"] = results["jc"]
        named["noop_over_journal_limit_kafka_postgres"] = results["c"] / results["jc"]
        named["wal_bytes_per_noop_event_postgres"] = results["wal"]
        named["commits_per_noop_event_postgres"] = results["commits"]
    for journal, us in NOOP_CPU_US.items():
        named[f"worker_cpu_us_per_noop_event_{journal}"] = us
    named["ordered_over_partition_serial"] = results["d"] / results["e"]
    emit(named)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--llm-events", type=int, default=1000)
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help="PostgreSQL server for (c) (a fresh schema is made and dropped)",
    )
    parser.add_argument("--no-postgres", dest="postgres", action="store_const", const=None)
    parser.add_argument("--bootstrap", default=None, help="a running broker (host:port)")
    asyncio.run(main(parser.parse_args()))
