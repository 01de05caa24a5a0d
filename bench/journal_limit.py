"""The journal's own limit: Store.claim_many + complete_many driven directly, in batches.

Every throughput benchmark divides its figure by this one, measured in the same run on the same
kind of store (a fresh SQLite file next to the benchmark's, a fresh schema on the same
PostgreSQL server): the fraction of its own journal's capacity that agentstream reaches.
"""

from __future__ import annotations

import time

from agentstream.backends import Backends
from agentstream.event import Message, payload_hash
from agentstream.journal import ClaimStatus, Completion, EventMeta
from bench import workload

BATCH = 500


async def journal_limit(store_url: str, n: int, *, keys: int = 200, batch: int = BATCH) -> float:
    """Events/s of claim_many + complete_many in batches of ``batch`` on a fresh journal.

    The events are the synthetic stream the runtime benchmarks feed (same payloads, keys and
    coordinates), one batch in flight at a time, as one worker's journal batcher sends them.
    """
    backends = Backends(store_url, store_url)
    store = backends.store()
    await store.open()
    try:
        records = workload.records("events", n, keys)
        requests = []
        for i, r in enumerate(records):
            message = Message("events", i % 8, i // 8, r.key, r.value, r.headers)
            meta = EventMeta(
                key=(r.key or b"").decode(),
                topic="events",
                partition=message.partition,
                offset=message.offset,
                timestamp_ms=0,
                input_hash=payload_hash(r.value),
                group_id="limit",
                message=message,
            )
            requests.append((f"e{i}", meta))
        started = time.perf_counter()
        for i in range(0, n, batch):
            chunk = requests[i : i + batch]
            claims = await store.claim_many("limit", chunk, owner="limit", lease_s=30.0)
            assert all(c.status == ClaimStatus.CLAIMED for c in claims)
            done = [(eid, c.epoch, Completion()) for (eid, _), c in zip(chunk, claims, strict=True)]
            errors = await store.complete_many("limit", done)
            assert not any(errors)
        return n / (time.perf_counter() - started)
    finally:
        await store.close()
