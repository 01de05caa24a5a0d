"""Canonical JSON, request fingerprints and output encoding.

Fingerprints must be equal for equal requests across processes and Python versions, so they are
SHA-256 over canonical JSON (sorted keys, no whitespace, non-JSON values rendered by pydantic).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pydantic_core
from pydantic import BaseModel


def to_jsonable(value: Any) -> Any:
    """Convert a value (pydantic models, dataclasses, dates, bytes...) to plain JSON data."""
    return pydantic_core.to_jsonable_python(value, fallback=repr)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text of a value."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(*parts: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()


def encode_value(value: Any) -> bytes:
    """Encode an agent's output value as record bytes.

    Pydantic models and JSON-able values become compact JSON; ``bytes`` pass through; ``str``
    becomes UTF-8.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode("utf-8")
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False).encode()
