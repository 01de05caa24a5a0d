"""The Confluent Schema Registry wire format: Avro, JSON Schema and Protobuf records.

Records start with a magic byte 0 and a 4-byte schema id (Protobuf adds message indexes); the
schema is fetched from the registry by id. Decoding and encoding go through confluent-kafka's
own serializers and :class:`~confluent_kafka.schema_registry.SchemaRegistryClient`, so any
registry that speaks its REST API works (Confluent Schema Registry, Confluent Cloud, Karapace,
Redpanda, Apicurio in its compatibility mode).

The registry is named by ``url`` (basic auth as ``https://USER:PASSWORD@host``), a ``conf``
mapping of the client's settings (``basic.auth.user.info``, ``ssl.ca.location``...),
``$AGENTSTREAM_SCHEMA_REGISTRY_URL``, or the app's broker URL: its ``schema.registry.*``
settings, for example ``kafka://b:9092?schema.registry.url=https://r:8081`` with
``&schema.registry.basic.auth.user.info=KEY:SECRET``. Install with
``pip install 'agentstream[schema-registry]'``.

A record whose schema id the registry does not know, or whose bytes do not match the schema,
is poison: it is dead-lettered at once with its original bytes. The decoder may fetch a schema
(once per id, then cached), so it runs off the event loop.
"""

from __future__ import annotations

import enum
import importlib
import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from agentstream.codec import to_jsonable
from agentstream.event import Event, Message
from agentstream.failures import ConfigurationError, UndecodablePayload
from agentstream.formats.base import Decoded, Encoded

URL_ENV = "AGENTSTREAM_SCHEMA_REGISTRY_URL"


class SchemaFormat(enum.StrEnum):
    """The schema types a registry stores."""

    AVRO = "avro"
    JSON = "json"
    PROTOBUF = "protobuf"


def registry_settings(broker_url: str) -> dict[str, str]:
    """The ``schema.registry.*`` settings of a broker URL, without the prefix."""
    query = broker_url.partition("?")[2]
    prefix = "schema.registry."
    return {k.removeprefix(prefix): v for k, v in parse_qsl(query) if k.startswith(prefix)}


def registry_client(url: str | None = None, conf: Mapping[str, Any] | None = None) -> Any:
    """A SchemaRegistryClient for ``url`` or ``conf`` (else ``$AGENTSTREAM_SCHEMA_REGISTRY_URL``).

    Raises:
        ConfigurationError: No registry is named, or confluent-kafka's registry extras are
            missing.
    """
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "the Schema Registry format needs pip install 'agentstream[schema-registry]'"
        ) from exc
    settings = dict(conf or {})
    if url is not None:
        settings["url"] = url
    settings.setdefault("url", os.environ.get(URL_ENV) or "")
    if not settings["url"]:
        raise ConfigurationError(
            f"name the schema registry: url=, conf={{'url': ...}} or ${URL_ENV}"
        )
    return SchemaRegistryClient(settings)


def _serde_context(topic: str, message: Message | None = None) -> Any:
    from confluent_kafka.serialization import MessageField, SerializationContext

    headers: list[tuple[str, str | bytes | None]] | None = (
        None if message is None else list(message.headers)
    )
    return SerializationContext(topic, MessageField.VALUE, headers)


def _json_format() -> Any:
    """Protobuf's ``json_format`` module (loaded on use: protobuf is optional, and untyped)."""
    return importlib.import_module("google.protobuf.json_format")


class _Registry:
    """The client, built on first use from what was given, the environment or the broker URL."""

    def __init__(self, url: str | None, conf: Mapping[str, Any] | None, client: Any) -> None:
        self._url = url
        self._conf = dict(conf or {})
        self._client = client
        self._broker: dict[str, str] = {}
        self._lock = threading.Lock()
        if (
            client is None
            and url is None
            and "url" not in self._conf
            and not os.environ.get(URL_ENV)
        ):
            return  # named later by the broker URL (bind_broker), or an error on first use
        if client is None:
            self._client = registry_client(url, self._conf)

    def bind(self, broker_url: str) -> None:
        self._broker = registry_settings(broker_url)

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = registry_client(None, {**self._broker, **self._conf})
            return self._client


class SchemaRegistryDecoder:
    """Decode Schema Registry wire-format records into data for the handler's input type.

    Avro and JSON Schema records become dicts; Protobuf records become dicts of their fields
    (``MessageToDict`` with the field names of the ``.proto``), validated into the input model.

    Args:
        format: ``avro``, ``json`` or ``protobuf``.
        url: Registry URL (credentials as ``https://USER:PASSWORD@host``).
        conf: Further SchemaRegistryClient settings.
        message_type: The generated Protobuf message class (``protobuf`` only).
        client: A ready SchemaRegistryClient instead of ``url`` and ``conf``.
    """

    blocking = True

    def __init__(
        self,
        format: SchemaFormat | str,
        *,
        url: str | None = None,
        conf: Mapping[str, Any] | None = None,
        message_type: Any = None,
        client: Any = None,
    ) -> None:
        self.format = SchemaFormat(format)
        if self.format == SchemaFormat.PROTOBUF and message_type is None:
            raise ConfigurationError("the protobuf format needs message_type= (the message class)")
        self._registry = _Registry(url, conf, client)
        self._message_type = message_type
        self._local = threading.local()  # serializers keep caches that are not thread-safe

    def _deserializer(self) -> Any:
        found = getattr(self._local, "deserializer", None)
        if found is not None:
            return found
        if self.format == SchemaFormat.AVRO:
            from confluent_kafka.schema_registry.avro import AvroDeserializer

            found = AvroDeserializer(schema_registry_client=self._registry.client())
        elif self.format == SchemaFormat.JSON:
            from confluent_kafka.schema_registry.json_schema import JSONDeserializer

            found = JSONDeserializer(None, schema_registry_client=self._registry.client())
        else:
            from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer

            found = ProtobufDeserializer(
                self._message_type,
                {"use.deprecated.format": False},
                schema_registry_client=self._registry.client(),
            )
        self._local.deserializer = found
        return found

    def bind_broker(self, url: str) -> None:
        """Take the registry from the broker URL's ``schema.registry.*`` settings if unnamed."""
        self._registry.bind(url)

    def decode(self, message: Message) -> Decoded:
        """Read the schema id, fetch the schema and deserialize the value."""
        value = message.value
        if value is None:  # a tombstone, as Confluent's deserializers read it: no record
            return Decoded(None, attributes={"schema_format": str(self.format)})
        if len(value) < 5 or value[0] != 0:
            raise UndecodablePayload(
                "not in the Schema Registry wire format (no magic byte 0 and schema id)"
            )
        schema_id = int.from_bytes(value[1:5], "big")
        try:
            data = self._deserializer()(value, _serde_context(message.topic, message))
        except Exception as exc:
            raise UndecodablePayload(
                f"{self.format} record with schema id {schema_id} cannot be decoded: {exc}"
            ) from exc
        if self.format == SchemaFormat.PROTOBUF:
            data = _json_format().MessageToDict(data, preserving_proto_field_name=True)
        return Decoded(data, attributes={"schema_id": schema_id, "schema_format": str(self.format)})


class SchemaRegistryEncoder:
    """Encode outputs in the Schema Registry wire format.

    The schema is registered under the topic's value subject (``TOPIC-value``) on first use,
    unless ``auto_register=False`` (then the subject's latest version is used).

    Args:
        format: ``avro``, ``json`` or ``protobuf``.
        schema: The Avro or JSON schema text (not for ``protobuf``).
        message_type: The generated Protobuf message class (``protobuf`` only); output values
            are dicts (or pydantic models) of its fields.
        url: Registry URL.
        conf: Further SchemaRegistryClient settings.
        client: A ready SchemaRegistryClient instead of ``url`` and ``conf``.
        auto_register: Register the schema when the subject does not have it.
    """

    blocking = True

    def __init__(
        self,
        format: SchemaFormat | str,
        *,
        schema: str | None = None,
        message_type: Any = None,
        url: str | None = None,
        conf: Mapping[str, Any] | None = None,
        client: Any = None,
        auto_register: bool = True,
    ) -> None:
        self.format = SchemaFormat(format)
        if self.format == SchemaFormat.PROTOBUF:
            if message_type is None:
                raise ConfigurationError("the protobuf format needs message_type=")
        elif schema is None:
            raise ConfigurationError(f"the {self.format} format needs schema= (the schema text)")
        self._registry = _Registry(url, conf, client)
        self._schema = schema
        self._message_type = message_type
        self._config = {
            "auto.register.schemas": auto_register,
            "use.latest.version": not auto_register,
        }
        self._local = threading.local()

    def _serializer(self) -> Any:
        found = getattr(self._local, "serializer", None)
        if found is not None:
            return found
        if self.format == SchemaFormat.AVRO:
            from confluent_kafka.schema_registry.avro import AvroSerializer

            found = AvroSerializer(self._registry.client(), self._schema, conf=self._config)
        elif self.format == SchemaFormat.JSON:
            from confluent_kafka.schema_registry.json_schema import JSONSerializer

            found = JSONSerializer(self._schema, self._registry.client(), conf=self._config)
        else:
            from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

            found = ProtobufSerializer(
                self._message_type,
                self._registry.client(),
                {**self._config, "use.deprecated.format": False},
            )
        self._local.serializer = found
        return found

    def bind_broker(self, url: str) -> None:
        """Take the registry from the broker URL's ``schema.registry.*`` settings if unnamed."""
        self._registry.bind(url)

    def encode(self, value: Any, *, event: Event, topic: str, index: int) -> Encoded:
        """Serialize one output with the schema (registering it on first use)."""
        data = to_jsonable(value)
        if self.format == SchemaFormat.PROTOBUF:
            data = _json_format().ParseDict(data, self._message_type())
        return Encoded(self._serializer()(data, _serde_context(topic)))
