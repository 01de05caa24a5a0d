"""Producing to SQS queues and SNS topics: batching by count and size, partial-failure retries.

Records are encoded by :mod:`agentstream.transports.sqs_codec`, grouped into batches of at most
ten whose sizes add up to at most the destination's limit, and sent in order. Entries SQS or SNS
did not accept for a service-side reason are sent again, a few times; entries rejected as the
sender's fault (invalid content) are a configuration error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from agentstream.event import OutgoingRecord
from agentstream.failures import ConfigurationError, TransientError
from agentstream.transports.sqs_client import AwsClients, translate_error
from agentstream.transports.sqs_codec import EncodedRecord, encode_record

if TYPE_CHECKING:
    from types_aiobotocore_sns.type_defs import (
        MessageAttributeValueTypeDef as SNSAttributeTypeDef,
    )
    from types_aiobotocore_sns.type_defs import PublishBatchRequestEntryTypeDef
    from types_aiobotocore_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

SNS_MAX_SIZE = 262_144
"""SNS's message size limit in bytes."""


async def send_to_queue(
    clients: AwsClients, destination: str, records: Sequence[OutgoingRecord]
) -> None:
    """Send records to an SQS queue in order (``SendMessageBatch``), FIFO ids included."""
    info = await clients.queue(destination)
    encoded = [
        encode_record(
            r,
            fifo=info.fifo,
            content_dedupe=info.content_dedupe,
            max_size=info.max_message_size,
        )
        for r in records
    ]
    for batch in _size_batches(encoded, info.max_message_size):
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for i, rec in enumerate(batch):
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": str(i),
                "MessageBody": rec.body,
                "MessageAttributes": _sqs_attributes(rec),
            }
            if rec.group_id is not None:
                entry["MessageGroupId"] = rec.group_id
            if rec.dedupe_id is not None:
                entry["MessageDeduplicationId"] = rec.dedupe_id
            entries.append(entry)

        async def call(
            pending: list[SendMessageBatchRequestEntryTypeDef],
        ) -> list[tuple[str, bool, str]]:
            response = await clients.sqs.send_message_batch(QueueUrl=info.url, Entries=pending)
            return [
                (f["Id"], f.get("SenderFault", False), f"{f.get('Code')}: {f.get('Message')}")
                for f in response.get("Failed", [])
            ]

        await _send_with_retries(entries, call, f"send to queue {destination!r}")


async def publish_to_topic(
    clients: AwsClients, destination: str, records: Sequence[OutgoingRecord]
) -> None:
    """Publish records to an SNS topic (``sns:NAME`` or an ARN) in order (``PublishBatch``)."""
    topic = await clients.topic(destination)
    sns = await clients.sns()
    encoded = [encode_record(r, fifo=topic.fifo, max_size=SNS_MAX_SIZE) for r in records]
    for batch in _size_batches(encoded, SNS_MAX_SIZE):
        entries: list[PublishBatchRequestEntryTypeDef] = []
        for i, rec in enumerate(batch):
            entry: PublishBatchRequestEntryTypeDef = {
                "Id": str(i),
                "Message": rec.body,
                "MessageAttributes": _sns_attributes(rec),
            }
            if rec.group_id is not None:
                entry["MessageGroupId"] = rec.group_id
            if rec.dedupe_id is not None:
                entry["MessageDeduplicationId"] = rec.dedupe_id
            entries.append(entry)

        async def call(
            pending: list[PublishBatchRequestEntryTypeDef],
        ) -> list[tuple[str, bool, str]]:
            response = await sns.publish_batch(
                TopicArn=topic.arn, PublishBatchRequestEntries=pending
            )
            return [
                (f["Id"], f.get("SenderFault", False), f"{f.get('Code')}: {f.get('Message')}")
                for f in response.get("Failed", [])
            ]

        await _send_with_retries(entries, call, f"publish to {destination!r}")


def _size_batches(encoded: Sequence[EncodedRecord], max_total: int) -> list[list[EncodedRecord]]:
    """Split records into batches of at most ten whose sizes add up to at most ``max_total``."""
    batches: list[list[EncodedRecord]] = []
    current: list[EncodedRecord] = []
    total = 0
    for rec in encoded:
        if current and (len(current) == 10 or total + rec.size > max_total):
            batches.append(current)
            current, total = [], 0
        current.append(rec)
        total += rec.size
    if current:
        batches.append(current)
    return batches


async def _send_with_retries(
    entries: list[Any],
    call: Callable[[list[Any]], Awaitable[list[tuple[str, bool, str]]]],
    action: str,
    *,
    rounds: int = 3,
) -> None:
    """Send a batch, re-sending only the entries that failed, a few times."""
    pending = entries
    for attempt in range(rounds):
        try:
            failed = await call(pending)
        except Exception as exc:
            raise translate_error(exc, action) from exc
        if not failed:
            return
        sender = [msg for _, fault, msg in failed if fault]
        if sender:
            raise ConfigurationError(f"SQS {action}: rejected: {'; '.join(sender[:3])}")
        failed_ids = {fid for fid, _, _ in failed}
        pending = [e for e in pending if e["Id"] in failed_ids]
        if attempt + 1 < rounds:
            await asyncio.sleep(0.2 * (attempt + 1))
    raise TransientError(
        f"SQS {action}: {len(pending)} record(s) not accepted after {rounds} tries"
    )


def _sqs_attributes(rec: EncodedRecord) -> dict[str, MessageAttributeValueTypeDef]:
    out: dict[str, MessageAttributeValueTypeDef] = {}
    for name, attr in rec.attributes.items():
        if isinstance(attr.value, bytes):
            out[name] = {"DataType": attr.data_type, "BinaryValue": attr.value}
        else:
            out[name] = {"DataType": attr.data_type, "StringValue": attr.value}
    return out


def _sns_attributes(rec: EncodedRecord) -> dict[str, SNSAttributeTypeDef]:
    out: dict[str, SNSAttributeTypeDef] = {}
    for name, attr in rec.attributes.items():
        if isinstance(attr.value, bytes):
            out[name] = {"DataType": attr.data_type, "BinaryValue": attr.value}
        else:
            out[name] = {"DataType": attr.data_type, "StringValue": attr.value}
    return out
