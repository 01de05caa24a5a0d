"""A stand-in for a Schema Registry: the few REST endpoints confluent-kafka's client calls.

No Confluent Schema Registry can run here (it is a JVM server outside the package registries,
and Karapace, Aiven's Python implementation, is not published on PyPI), so the Schema Registry
tests talk HTTP to this server instead. It implements what the SchemaRegistryClient uses to
serialize and deserialize: register a schema under a subject (``POST /subjects/S/versions``),
look one up (``POST /subjects/S``), fetch by id (``GET /schemas/ids/N``), and a subject's
versions (``GET /subjects/S/versions/latest`` and ``/N``), with the registry's error bodies.
Schemas are kept as given (no normalisation, no compatibility checks).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class Registry:
    """Schemas by id and subjects' versions, shared by the handler threads."""

    schemas: list[dict[str, Any]] = field(default_factory=list)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, subject: str, body: dict[str, Any]) -> int:
        entry = {
            "schema": body["schema"],
            "schemaType": body.get("schemaType", "AVRO"),
            "references": body.get("references", []),
        }
        with self.lock:
            if entry in self.schemas:
                schema_id = self.schemas.index(entry) + 1
            else:
                self.schemas.append(entry)
                schema_id = len(self.schemas)
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def version(self, subject: str, schema_id: int) -> dict[str, Any]:
        versions = self.subjects[subject]
        return {
            "subject": subject,
            "version": versions.index(schema_id) + 1,
            "id": schema_id,
            **self.schemas[schema_id - 1],
        }


def _handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _missing(self, code: int, message: str) -> None:
            self._send(404, {"error_code": code, "message": message})

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            registry.requests.append(f"GET {path}")
            registry.authorizations.add(self.headers.get("Authorization", ""))
            if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                n = int(m.group(1))
                if not 1 <= n <= len(registry.schemas):
                    return self._missing(40403, f"Schema {n} not found")
                return self._send(200, registry.schemas[n - 1])
            if m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path):
                subject = unquote(m.group(1))
                versions = registry.subjects.get(subject)
                if not versions:
                    return self._missing(40401, f"Subject '{subject}' not found.")
                which = m.group(2)
                index = -1 if which == "latest" else int(which) - 1
                if index >= len(versions):
                    return self._missing(40402, f"Version {which} not found.")
                return self._send(200, registry.version(subject, versions[index]))
            return self._missing(404, f"no such endpoint here: {path}")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            registry.requests.append(f"POST {path}")
            registry.authorizations.add(self.headers.get("Authorization", ""))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
                return self._send(200, {"id": registry.register(unquote(m.group(1)), body)})
            if m := re.fullmatch(r"/subjects/([^/]+)", path):
                subject = unquote(m.group(1))
                entry = {
                    "schema": body["schema"],
                    "schemaType": body.get("schemaType", "AVRO"),
                    "references": body.get("references", []),
                }
                if entry not in registry.schemas:
                    return self._missing(40403, "Schema not found")
                schema_id = registry.schemas.index(entry) + 1
                if schema_id not in registry.subjects.get(subject, []):
                    return self._missing(40403, "Schema not found")
                return self._send(200, registry.version(subject, schema_id))
            return self._missing(404, f"no such endpoint here: {path}")

    return Handler


@contextmanager
def schema_registry() -> Iterator[tuple[str, Registry]]:
    """Serve a fresh registry on a loopback port; yield its URL and its state."""
    registry = Registry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    thread = threading.Thread(target=server.serve_forever, name="schema-registry", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
