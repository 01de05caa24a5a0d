"""Health endpoints: ``/healthz`` (liveness) and ``/readyz`` (readiness) next to ``/metrics``.

The state comes from the same middleware hooks as the metrics (:class:`HealthState` is fed by
:class:`~agentstream.observability.metrics.PrometheusMiddleware`), so a Kubernetes probe or a
supervisor sees what the runtime sees:

========== =================================================== ===========================
component  what it reflects                                    fails
========== =================================================== ===========================
broker     the poll loop turning (``on_poll``) and outputs      ``/healthz`` and ``/readyz``
           leaving (the outbox relay)                          (restart: it will not heal)
outbox     outputs waiting with none published past            ``/healthz`` and ``/readyz``
           ``publish_unhealthy_s``
journal    the journal answering the relay's backlog reads     ``/readyz`` only
provider   every model circuit breaker closed                  ``/readyz`` only
========== =================================================== ===========================

A journal or provider outage fails readiness only: a restart cannot fix it, and the worker
rides it out on its own (see docs/operations.md). Both endpoints answer JSON with every
component's state; 200 when healthy (or ready), else 503.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HealthState", "health_wsgi_app"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class HealthState:
    """What the probes answer from, updated by middleware hooks (thread-safe reads).

    Attributes:
        poll_stale_s: A running worker whose poll loop has not turned for this long is
            unhealthy.
    """

    poll_stale_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    workers: int = 0
    last_poll: dict[str, float] = field(default_factory=dict)
    open_breakers: dict[str, str] = field(default_factory=dict)
    outbox_healthy: bool = True
    outbox_pending: int = 0
    outbox_stalled_s: float = 0.0
    journal_ok: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def polled(self, agent: str) -> None:
        """An agent's poll loop turned."""
        with self._lock:
            self.last_poll[agent] = self.clock()

    def breaker(self, name: str, status: str, reason: str) -> None:
        """A model breaker changed state."""
        with self._lock:
            if status == "closed":
                self.open_breakers.pop(name, None)
            else:
                self.open_breakers[name] = f"{status}: {reason}"

    def outbox(self, *, healthy: bool, pending: int, stalled_s: float, journal_ok: bool) -> None:
        """The relay's latest view of the outbox and the journal."""
        with self._lock:
            self.outbox_healthy, self.outbox_pending = healthy, pending
            self.outbox_stalled_s, self.journal_ok = stalled_s, journal_ok

    def report(self) -> dict[str, Any]:
        """Every component's state, and whether the process is alive and ready."""
        with self._lock:
            now = self.clock()
            stale = sorted(a for a, t in self.last_poll.items() if now - t > self.poll_stale_s)
            broker = {
                "ok": not stale and self.outbox_healthy,
                "stale_poll_loops": stale,
            }
            outbox = {
                "ok": self.outbox_healthy,
                "pending": self.outbox_pending,
                "stalled_s": round(self.outbox_stalled_s, 1),
            }
            journal = {"ok": self.journal_ok}
            provider = {"ok": not self.open_breakers, "open_breakers": dict(self.open_breakers)}
            started = self.workers > 0
        alive = bool(broker["ok"]) and bool(outbox["ok"])
        ready = started and alive and bool(journal["ok"]) and bool(provider["ok"])
        return {
            "alive": alive,
            "ready": ready,
            "workers": self.workers,
            "broker": broker,
            "outbox": outbox,
            "journal": journal,
            "provider": provider,
        }


def health_wsgi_app(health: HealthState, metrics: WsgiApp) -> WsgiApp:
    """A WSGI app answering ``/healthz`` and ``/readyz``, and ``metrics`` for everything else."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        report = health.report()
        good = report["alive"] if path == "/healthz" else report["ready"]
        body = json.dumps(report).encode()
        start_response(
            "200 OK" if good else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
