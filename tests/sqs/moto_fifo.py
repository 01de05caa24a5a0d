"""The moto server with SQS made to behave like AWS's under concurrent consumers and crashes.

Stock moto 5 gets three things wrong that a crash test with two workers hits at once:

* **FIFO redelivery order.** When several received messages of one group become visible again
  (their consumer died, or released them), moto skips the first and hands out the last, so the
  group comes back out of order. AWS redelivers them in order, from the first.
* **Atomicity.** Calls run on concurrent threads without a lock: two receives can take the same
  message (or share a FIFO group), and two concurrent ``DeleteMessageBatch`` calls each rebuild
  the queue's message list from the same old one, so one of them brings back messages the
  other deleted, which are then delivered again after their visibility timeout.
* **Speed.** moto reads the clock through ``datetime`` for every queued message it looks at, on
  every send and receive, so each call costs tens of milliseconds per thousand queued messages.

This launcher replaces the receive with one that walks the queue once, in order, under a lock
(on FIFO queues handing out each group's visible messages up to its first one in flight or
delayed), takes the same lock for sends, deletes and visibility changes, and reads the clock with
``time.time()`` (the same value, without the ``datetime`` round trip). Run it like moto::

    python -m tests.sqs.moto_fifo -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

_lock = threading.RLock()


def _locked(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return fn(*args, **kwargs)

    return wrapper


def install() -> None:
    """Patch moto's SQS models in this process."""
    from moto.core.utils import unix_time
    from moto.sqs import models

    def visible(message: Any) -> bool:
        return time.time() * 1000 > message.visible_at

    def delayed(message: Any) -> bool:
        return time.time() * 1000 < message.delayed_until

    models.Message.visible = property(visible)
    models.Message.delayed = property(delayed)
    models.Queue.add_message = _locked(models.Queue.add_message)
    models.Queue.delete_message = _locked(models.Queue.delete_message)
    models.SQSBackend.change_message_visibility = _locked(
        models.SQSBackend.change_message_visibility
    )

    def receive_pass(backend: Any, queue: Any, count: int, visibility: int, names: list[str]):
        result: list[Any] = []
        with _lock:
            now_ms = time.time() * 1000
            retention_s = int(queue.message_retention_period)
            blocked: set[str | None] = set()
            to_dlq: list[Any] = []
            for message in list(queue._messages):
                group = message.group_id if queue.fifo_queue else None
                if queue.fifo_queue and group in blocked:
                    continue
                if message.delayed_until > now_ms or message.visible_at >= now_ms:
                    blocked.add(group)  # later messages of the group wait behind it
                    continue
                if message.sent_timestamp / 1000 + retention_s <= now_ms / 1000:
                    blocked.add(group)  # expired
                    continue
                queue.pending_messages.discard(message)  # its visibility lapsed, if held
                policy = queue.redrive_policy
                if (
                    queue.dead_letter_queue is not None
                    and policy
                    and message.approximate_receive_count >= policy["maxReceiveCount"]
                ):
                    to_dlq.append(message)
                    continue
                queue.pending_messages.add(message)
                message.mark_received(visibility_timeout=visibility)
                copy = deepcopy(message)
                models._filter_message_attributes(copy, names)
                result.append(copy)
                if len(result) >= count:
                    break
            for message in to_dlq:
                queue._messages.remove(message)
                queue.dead_letter_queue.add_message(message)
        return result

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        names = message_attribute_names or []
        polling_end = unix_time() + wait_seconds_timeout
        while True:
            result = receive_pass(self, queue, count, visibility_timeout, names)
            if result or wait_seconds_timeout == 0 or unix_time() > polling_end:
                return result
            queue.wait_for_messages(1)

    models.SQSBackend.receive_message = receive_message


def main(argv: list[str] | None = None) -> None:
    """Start the moto server with the fixes installed."""
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


@contextlib.contextmanager
def fifo_moto_server() -> Iterator[str]:
    """Start this launcher on a free loopback port and yield its endpoint URL."""
    from tests.services import free_port, unavailable, wait_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sqs.moto_fifo", "-H", "127.0.0.1", "-p", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_port(port, 30):
            unavailable("the moto server (tests.sqs.moto_fifo) did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
