"""The moto server with SQS FIFO receives made to behave like AWS's.

moto 5's ``ReceiveMessage`` on a FIFO queue gets two things wrong that a crash test hits at once:

* when several received messages of one group become visible again (their consumer died, or
  released them), it skips the first and hands out the last, so the group comes back out of
  order; AWS redelivers them in order, from the first;
* a receive is not atomic: two consumers polling at the same moment can both take the same
  message, or messages of one group, which AWS never allows on a FIFO queue.

This launcher replaces moto's FIFO receive with one that walks each group in order, hands out
its visible messages up to the first one in flight or delayed, and holds a lock for the pass.
Standard queues keep moto's own receive.

It also makes moto fast enough for a thousand-message crash test: moto reads the clock through
``datetime`` for every message it looks at (is it visible? delayed?) and looks at every message
of the queue for each one it sends or receives, so a send or receive costs tens of milliseconds
per thousand queued messages. Here a message's visibility reads ``time.time()`` instead (the
same value, without the ``datetime`` round trip). Run it like moto::

    python -m tests.sqs.moto_fifo -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

_receive_lock = threading.Lock()


def install() -> None:
    """Replace ``SQSBackend.receive_message`` for FIFO queues."""
    from moto.core.utils import unix_time
    from moto.sqs import models

    def visible(message: Any) -> bool:
        return time.time() * 1000 > message.visible_at

    def delayed(message: Any) -> bool:
        return time.time() * 1000 < message.delayed_until

    models.Message.visible = property(visible)  # type: ignore[method-assign,assignment]
    models.Message.delayed = property(delayed)  # type: ignore[method-assign,assignment]

    original = models.SQSBackend.receive_message

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        if not queue.fifo_queue:
            return original(  # type: ignore[no-any-return]
                self,
                queue_name,
                count,
                wait_seconds_timeout,
                visibility_timeout,
                message_attribute_names,
            )
        names = message_attribute_names or []
        polling_end = unix_time() + wait_seconds_timeout
        retention_s = int(queue.message_retention_period)
        while True:
            result: list[Any] = []
            with _receive_lock:
                now_ms = time.time() * 1000
                blocked: set[str | None] = set()
                to_dlq: list[Any] = []
                for message in list(queue._messages):
                    group = message.group_id
                    if group in blocked:
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
                    message.mark_received(visibility_timeout=visibility_timeout)
                    copy = deepcopy(message)
                    models._filter_message_attributes(copy, names)
                    result.append(copy)
                    if len(result) >= count:
                        break
                for message in to_dlq:
                    queue._messages.remove(message)
                    queue.dead_letter_queue.add_message(message)
            if result or wait_seconds_timeout == 0 or unix_time() > polling_end:
                return result
            queue.wait_for_messages(1)

    models.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """Start the moto server with the FIFO receive installed."""
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
