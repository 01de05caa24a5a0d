"""The AWS edge of the SQS transport: clients, queue and topic lookup, error translation.

Everything botocore-specific stays in this module and :mod:`agentstream.transports.sqs`:
errors are translated into :mod:`agentstream.failures` here (a missing queue or bad
credentials are configuration errors; throttling, 5xx and connection trouble are transient).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from agentstream.failures import AgentStreamError, ConfigurationError, TransientError
from agentstream.transports.sqs_config import SQSSettings

if TYPE_CHECKING:
    from aiobotocore.session import AioSession
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.literals import QueueAttributeNameType

_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_MISSING_TOPIC = {"NotFound", "NotFoundException"}
_CONFIGURATION = {
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAddress",
    "InvalidParameterValue",
    "AWS.SimpleQueueService.UnsupportedOperation",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("QueryErrorCode") or error.get("Code") or "")
    return ""


def translate_error(exc: BaseException, action: str) -> AgentStreamError:
    """Translate a botocore or connection error into agentstream's error tree.

    Args:
        exc: The error raised by the client.
        action: What was being done, for the message (``"receive from orders"``).
    """
    if isinstance(exc, AgentStreamError):
        return exc
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError | NoRegionError):
        return ConfigurationError(f"SQS {action}: {exc}")
    if isinstance(exc, ClientError):
        code = error_code(exc)
        full_code = str((exc.response.get("Error") or {}).get("Code") or "")
        if code in _MISSING_QUEUE or full_code in _MISSING_QUEUE:
            return ConfigurationError(f"SQS {action}: the queue does not exist ({code})")
        if code in _MISSING_TOPIC:
            return ConfigurationError(f"SNS {action}: the topic does not exist ({code})")
        if code in _CONFIGURATION:
            return ConfigurationError(f"SQS {action}: {exc}")
        return TransientError(f"SQS {action}: {exc}")
    return TransientError(f"SQS {action}: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """What the transport needs to know about one queue.

    Attributes:
        name: Queue name.
        url: Queue URL.
        fifo: Whether it is a FIFO queue.
        content_dedupe: Whether a FIFO queue deduplicates by body content.
        visibility_timeout_s: The queue's default visibility timeout.
        max_receive_count: Its redrive policy's ``maxReceiveCount``, when it has one.
        max_message_size: Largest message it accepts, in bytes.
    """

    name: str
    url: str
    fifo: bool
    content_dedupe: bool
    visibility_timeout_s: int
    max_receive_count: int | None
    max_message_size: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """An SNS topic the transport publishes to."""

    arn: str
    fifo: bool


def queue_name_of(target: str) -> str:
    """The queue name in a queue name, URL or ARN."""
    return target.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def is_sns_destination(target: str) -> bool:
    """Whether a destination names an SNS topic (``sns:NAME`` or an SNS ARN)."""
    return target.startswith(("sns:", "arn:aws:sns:"))


class AwsClients:
    """The SQS client (and, when first needed, the SNS client) of one transport.

    Args:
        settings: Connection settings.
    """

    def __init__(self, settings: SQSSettings) -> None:
        self.settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._sqs: SQSClient | None = None
        self._sns: SNSClient | None = None
        self._session: AioSession | None = None
        self._queues: dict[str, QueueInfo] = {}
        self._topics: dict[str, TopicInfo] = {}

    def _client_args(self) -> dict[str, Any]:
        from botocore.config import Config

        s = self.settings
        args: dict[str, Any] = {
            "region_name": s.region,
            "config": Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=s.wait_time_s + 25,
                max_pool_connections=32,
            ),
        }
        if s.endpoint_url is not None:
            args["endpoint_url"] = s.endpoint_url
        if s.access_key_id is not None:
            args["aws_access_key_id"] = s.access_key_id
            args["aws_secret_access_key"] = s.secret_access_key
        return args

    async def open(self) -> None:
        """Create the SQS client."""
        if self._sqs is not None:
            return
        try:
            from aiobotocore.session import get_session
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigurationError(
                "the SQS transport needs aiobotocore: pip install 'agentstream[sqs]'"
            ) from exc
        self._session = get_session()
        self._sqs = await self._stack.enter_async_context(
            self._session.create_client("sqs", **self._client_args())
        )

    @property
    def sqs(self) -> SQSClient:
        """The SQS client (after :meth:`open`)."""
        if self._sqs is None:
            raise RuntimeError("AwsClients.open() was not called")
        return self._sqs

    async def sns(self) -> SNSClient:
        """The SNS client, created on first use."""
        if self._sns is None:
            if self._session is None:
                raise RuntimeError("AwsClients.open() was not called")
            self._sns = await self._stack.enter_async_context(
                self._session.create_client("sns", **self._client_args())
            )
        return self._sns

    async def close(self) -> None:
        """Close the clients."""
        await self._stack.aclose()
        self._sqs = None
        self._sns = None

    async def queue(self, target: str) -> QueueInfo:
        """Look up (once) a queue by name or URL; create it when so configured.

        Raises:
            ConfigurationError: It does not exist and creation is off.
            TransientError: SQS could not be reached.
        """
        info = self._queues.get(target)
        if info is not None:
            return info
        name = queue_name_of(target)
        try:
            if target.startswith(("http://", "https://")):
                url = target
            else:
                url = await self._queue_url(name)
            attrs = (await self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
                "Attributes"
            ]
        except Exception as exc:
            raise translate_error(exc, f"look up queue {target!r}") from exc
        redrive = attrs.get("RedrivePolicy")
        max_receive: int | None = None
        if redrive:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                max_receive = int(json.loads(redrive)["maxReceiveCount"])
        info = QueueInfo(
            name=name,
            url=url,
            fifo=attrs.get("FifoQueue", "false").lower() == "true",
            content_dedupe=attrs.get("ContentBasedDeduplication", "false").lower() == "true",
            visibility_timeout_s=int(attrs.get("VisibilityTimeout", "30")),
            max_receive_count=max_receive,
            max_message_size=int(attrs.get("MaximumMessageSize", "262144")),
        )
        self._queues[target] = info
        return info

    async def _queue_url(self, name: str) -> str:
        try:
            return (await self.sqs.get_queue_url(QueueName=name))["QueueUrl"]
        except Exception as exc:
            translated = translate_error(exc, f"look up queue {name!r}")
            if not (self.settings.create_queues and isinstance(translated, ConfigurationError)):
                raise
        return await self.create_queue(name)

    async def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """Create a queue (FIFO when the name ends in ``.fifo``) and return its URL."""
        attrs = dict(attributes or {})
        if name.endswith(".fifo"):
            attrs.setdefault("FifoQueue", "true")
        try:
            response = await self.sqs.create_queue(
                QueueName=name, Attributes=cast("dict[QueueAttributeNameType, str]", attrs)
            )
        except Exception as exc:
            raise translate_error(exc, f"create queue {name!r}") from exc
        self._queues = {k: v for k, v in self._queues.items() if v.name != name}
        return response["QueueUrl"]

    async def topic(self, target: str) -> TopicInfo:
        """Look up (once) an SNS topic given as ``sns:NAME`` or an ARN."""
        info = self._topics.get(target)
        if info is not None:
            return info
        if target.startswith("arn:aws:sns:"):
            arn = target
        else:
            arn = await self._topic_arn(target.removeprefix("sns:"))
        info = TopicInfo(arn=arn, fifo=arn.endswith(".fifo"))
        self._topics[target] = info
        return info

    async def _topic_arn(self, name: str) -> str:
        sns = await self.sns()
        try:
            token: str | None = None
            while True:
                page = await (sns.list_topics(NextToken=token) if token else sns.list_topics())
                for topic in page.get("Topics", []):
                    arn = topic.get("TopicArn", "")
                    if arn.rsplit(":", 1)[-1] == name:
                        return arn
                token = page.get("NextToken")
                if not token:
                    break
            if not self.settings.create_queues:
                raise ConfigurationError(f"SNS topic {name!r} does not exist")
            attrs = {"FifoTopic": "true"} if name.endswith(".fifo") else {}
            return (await sns.create_topic(Name=name, Attributes=attrs))["TopicArn"]
        except Exception as exc:
            raise translate_error(exc, f"look up topic {name!r}") from exc
