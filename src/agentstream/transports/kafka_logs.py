"""librdkafka's log lines, folded: each distinct line once, its repeats at DEBUG.

librdkafka logs a line per failed connection attempt, several per second per client, so an
unreachable broker prints hundreds of identical lines. Every client the transport creates gets
a :class:`FoldedLog` as its ``logger``: the first occurrence of a line goes to the
``agentstream.kafka.librdkafka`` logger at its own level, the repeats at DEBUG, and the last
error is kept so a failure can name its cause in one line.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from confluent_kafka import KafkaError

_VOLATILE = re.compile(r"\(after \d+ms[^)]*\)|\d+ms|#\d+")
_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_AFTER = re.compile(r"\s*\(after \d+ms in state \w+\)")


class FoldedLog:
    """A ``logger`` for confluent-kafka clients that folds repeated lines.

    confluent-kafka calls ``log(level, "%s [%s] %s", facility, client, message)``. While
    ``quiet`` is set (the start-up probe, whose failure is reported in one line of its own)
    every line goes to DEBUG.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("agentstream.kafka.librdkafka")
        self.last_error: str | None = None
        self.repeats = 0
        self.quiet = False
        self.all_brokers_down = False
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def on_error(self, error: Any) -> None:
        """Librdkafka's ``error_cb``: remember that every broker is down (the probe stops)."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_brokers_down = True

    def log(self, level: int, fmt: str, *args: object) -> None:
        """Log one librdkafka line (a repeat of a line already seen goes to DEBUG)."""
        message = str(args[-1]) if args else fmt
        shape = _VOLATILE.sub("", message)
        with self._lock:
            if level >= logging.ERROR:
                self.last_error = _AFTER.sub("", _THREAD.sub("", message))
            first = not self.quiet and shape not in self._seen
            if first:
                self._seen.add(shape)
            else:
                self.repeats += 1
        self.logger.log(level if first else logging.DEBUG, fmt, *args)
