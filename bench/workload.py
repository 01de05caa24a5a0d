"""The synthetic stream the throughput benchmarks feed: small JSON events with an ``id`` header."""

from __future__ import annotations

import json
import random

from agentstream.event import OutgoingRecord


def records(
    topic: str, n: int, keys: int, *, seed: int = 1, duplicate_ratio: float = 0.0
) -> list[OutgoingRecord]:
    """``n`` events over ``keys`` keys, then ``duplicate_ratio * n`` producer duplicates.

    A duplicate carries the same ``id`` header (and payload) as its original.
    """
    rng = random.Random(seed)
    payloads = [
        {"id": f"e{i}", "key": f"k{rng.randrange(keys)}", "text": "hello world " * 4}
        for i in range(n)
    ]
    payloads += rng.sample(payloads, int(n * duplicate_ratio))
    return [
        OutgoingRecord(
            topic, p["key"].encode(), json.dumps(p).encode(), (("id", p["id"].encode()),)
        )
        for p in payloads
    ]
