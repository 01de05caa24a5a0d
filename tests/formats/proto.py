"""A Protobuf message class built at run time (no protoc here): ``agentstream.test.Ticket``."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def ticket_message_class() -> Any:
    """The class of ``message Ticket { string ticket_id = 1; int32 priority = 2; string text = 3; }``."""
    pool = descriptor_pool.Default()
    try:
        return message_factory.GetMessageClass(
            pool.FindMessageTypeByName("agentstream.test.Ticket")
        )
    except KeyError:
        pass
    f = descriptor_pb2.FileDescriptorProto(
        name="agentstream_test_ticket.proto", package="agentstream.test", syntax="proto3"
    )
    msg = f.message_type.add(name="Ticket")
    kinds = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind) in enumerate(
        [
            ("ticket_id", kinds.TYPE_STRING),
            ("priority", kinds.TYPE_INT32),
            ("text", kinds.TYPE_STRING),
        ],
        1,
    ):
        msg.field.add(name=name, number=number, type=kind, label=kinds.LABEL_OPTIONAL)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("agentstream.test.Ticket"))
