"""Record formats: decoders for inputs and encoders for outputs.

Pass one to ``@app.agent(decoder=..., encoder=...)``:

* :class:`CloudEventsDecoder` / :class:`CloudEventsEncoder`: CloudEvents 1.0, binary and
  structured mode, through the official ``cloudevents`` SDK (the default decoder already reads
  CloudEvents when a record is one);
* :class:`SchemaRegistryDecoder` / :class:`SchemaRegistryEncoder`: the Confluent Schema
  Registry wire format (Avro, JSON Schema, Protobuf) through confluent-kafka's serializers
  (``pip install 'agentstream[schema-registry]'``);
* :class:`RawDecoder`: the value as it is, parsed by the handler's input type.

Write your own by implementing :class:`Decoder` or :class:`Encoder`.
"""

from agentstream.formats.base import Decoded, Decoder, Encoded, Encoder, RawDecoder
from agentstream.formats.cloud_events import CloudEventsDecoder, CloudEventsEncoder
from agentstream.formats.schema_registry import (
    SchemaFormat,
    SchemaRegistryDecoder,
    SchemaRegistryEncoder,
)

__all__ = [
    "CloudEventsDecoder",
    "CloudEventsEncoder",
    "Decoded",
    "Decoder",
    "Encoded",
    "Encoder",
    "RawDecoder",
    "SchemaFormat",
    "SchemaRegistryDecoder",
    "SchemaRegistryEncoder",
]
