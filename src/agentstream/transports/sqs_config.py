"""Settings of the SQS transport, parsed from an ``sqs://`` URL.

::

    sqs://[ACCESS_KEY:SECRET@][HOST[:PORT]][?region=...&visibility_timeout=...&...]

* No host: the AWS endpoint of ``region``, with the default credential chain (environment,
  profile, instance role). A host (``sqs://127.0.0.1:4566``) is a local or private endpoint,
  reached over ``http`` unless ``tls=true``; it serves SNS too (moto, LocalStack, ElasticMQ).
* ``ACCESS_KEY:SECRET@`` gives static credentials: meant for emulators, which accept any.

Query parameters (all optional):

==================== ======================================================================
``region``           AWS region (default ``$AWS_REGION``, ``$AWS_DEFAULT_REGION``, us-east-1)
``tls``              ``true`` to reach a given host over https
``visibility_timeout`` seconds a received message stays invisible, renewed by the heartbeat
                     while it is worked on (default: the queue's own ``VisibilityTimeout``)
``heartbeat``        seconds between visibility renewals (default: a third of the timeout)
``wait_time``        long-poll wait of one ``ReceiveMessage``, 0-20 s (default 5); also the
                     longest a ``close()`` waits for the receive in flight
``prefetch``         messages received ahead of ``poll()`` per queue (default 20)
``create_queues``    ``true`` to create missing queues and SNS topics (FIFO when the name ends
                     in ``.fifo``); by default a missing queue is a configuration error
==================== ======================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from agentstream.failures import ConfigurationError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_KNOWN = {
    "region",
    "tls",
    "visibility_timeout",
    "heartbeat",
    "wait_time",
    "prefetch",
    "create_queues",
}


@dataclass(frozen=True, slots=True)
class SQSSettings:
    """How the SQS transport connects and paces itself.

    Attributes:
        region: AWS region.
        endpoint_url: Endpoint of SQS (and SNS); None for AWS's own.
        access_key_id: Static access key (emulators), else None for the default chain.
        secret_access_key: Its secret.
        visibility_timeout_s: Visibility of received messages; None to use each queue's own.
        heartbeat_s: Renewal period; None for a third of the shortest visibility timeout.
        wait_time_s: Long-poll wait of one receive call, 0-20 seconds.
        prefetch: Messages received ahead of ``poll()``, per queue.
        create_queues: Create missing queues and topics instead of failing.
    """

    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    visibility_timeout_s: int | None = None
    heartbeat_s: float | None = None
    wait_time_s: int = 5
    prefetch: int = 20
    create_queues: bool = False

    def __post_init__(self) -> None:
        if self.visibility_timeout_s is not None and not 1 <= self.visibility_timeout_s <= 43200:
            raise ConfigurationError("visibility_timeout must be between 1 and 43200 seconds")
        if self.heartbeat_s is not None and self.heartbeat_s <= 0:
            raise ConfigurationError("heartbeat must be positive")
        if (
            self.heartbeat_s is not None
            and self.visibility_timeout_s is not None
            and self.heartbeat_s >= self.visibility_timeout_s
        ):
            raise ConfigurationError("heartbeat must be shorter than visibility_timeout")
        if not 0 <= self.wait_time_s <= 20:
            raise ConfigurationError("wait_time must be between 0 and 20 seconds")
        if self.prefetch < 1:
            raise ConfigurationError("prefetch must be at least 1")

    def heartbeat_for(self, visibility_timeout_s: int) -> float:
        """The renewal period for messages held ``visibility_timeout_s`` at a time."""
        if self.heartbeat_s is not None:
            return self.heartbeat_s
        return max(0.2, visibility_timeout_s / 3)


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(f"sqs URL parameter {name}={value!r}: expected true or false")


def _number(name: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError as exc:
        raise ConfigurationError(
            f"sqs URL parameter {name}={value!r}: expected a {kind.__name__}"
        ) from exc


def parse_sqs_url(url: str) -> SQSSettings:
    """Parse an ``sqs://`` URL into settings.

    Args:
        url: The broker URL.

    Raises:
        ConfigurationError: The URL is not an ``sqs://`` URL or a parameter is invalid.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqs":
        raise ConfigurationError(f"{url!r} is not an sqs:// URL")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise ConfigurationError(
            f"unknown sqs URL parameter(s) {unknown}; known ones are {sorted(_KNOWN)}"
        )
    region = (
        params.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    endpoint: str | None = None
    if parts.hostname:
        scheme = "https" if _flag("tls", params.get("tls", "false")) else "http"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        endpoint = f"{scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    key = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    if (key is None) != (secret is None):
        raise ConfigurationError("sqs URL credentials need both ACCESS_KEY and SECRET")
    visibility = params.get("visibility_timeout")
    heartbeat = params.get("heartbeat")
    return SQSSettings(
        region=region,
        endpoint_url=endpoint,
        access_key_id=key,
        secret_access_key=secret,
        visibility_timeout_s=None
        if visibility is None
        else int(_number("visibility_timeout", visibility, int)),
        heartbeat_s=None if heartbeat is None else float(_number("heartbeat", heartbeat, float)),
        wait_time_s=int(_number("wait_time", params.get("wait_time", "5"), int)),
        prefetch=int(_number("prefetch", params.get("prefetch", "20"), int)),
        create_queues=_flag("create_queues", params.get("create_queues", "false")),
    )
