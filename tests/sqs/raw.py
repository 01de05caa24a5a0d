"""A plain aiobotocore SQS/SNS client for tests: set up queues and observe them from outside."""

from __future__ import annotations

import contextlib
from typing import Any

from aiobotocore.session import get_session


class RawSQS:
    """Direct SQS and SNS calls against an endpoint, with dummy credentials."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._stack = contextlib.AsyncExitStack()
        self.sqs: Any = None
        self.sns: Any = None

    async def open(self) -> None:
        session = get_session()
        args = {
            "region_name": "us-east-1",
            "endpoint_url": self.endpoint,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        self.sqs = await self._stack.enter_async_context(session.create_client("sqs", **args))
        self.sns = await self._stack.enter_async_context(session.create_client("sns", **args))

    async def close(self) -> None:
        await self._stack.aclose()

    async def url(self, name: str) -> str:
        return (await self.sqs.get_queue_url(QueueName=name))["QueueUrl"]

    async def arn(self, name: str) -> str:
        attrs = await self.sqs.get_queue_attributes(
            QueueUrl=await self.url(name), AttributeNames=["QueueArn"]
        )
        return str(attrs["Attributes"]["QueueArn"])

    async def depth(self, name: str) -> int:
        attrs = (
            await self.sqs.get_queue_attributes(
                QueueUrl=await self.url(name), AttributeNames=["All"]
            )
        )["Attributes"]
        return sum(
            int(attrs[k])
            for k in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    async def send(self, name: str, body: str, **kwargs: Any) -> str:
        response = await self.sqs.send_message(
            QueueUrl=await self.url(name), MessageBody=body, **kwargs
        )
        return str(response["MessageId"])

    async def receive(
        self, name: str, *, visibility: int = 30, wait: int = 0, max_messages: int = 10
    ) -> list[dict[str, Any]]:
        response = await self.sqs.receive_message(
            QueueUrl=await self.url(name),
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait,
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return list(response.get("Messages", []))
