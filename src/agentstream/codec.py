"""Canonical JSON, request fingerprints and output encoding.

Fingerprints must be equal for equal requests across processes and Python versions, so they are
SHA-256 over canonical JSON (sorted keys, no whitespace, non-JSON values rendered by pydantic).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import typing
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
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


@functools.lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    if annotation is None or annotation is inspect.Signature.empty or annotation is Any:
        return None
    try:
        return pydantic.TypeAdapter(annotation)
    except (pydantic.PydanticSchemaGenerationError, TypeError):
        return None


_RETURN_ADAPTERS: weakref.WeakKeyDictionary[Callable[..., Any], pydantic.TypeAdapter[Any] | None]
_RETURN_ADAPTERS = weakref.WeakKeyDictionary()


def return_adapter(fn: Callable[..., Any]) -> pydantic.TypeAdapter[Any] | None:
    """A validator for ``fn``'s return annotation (unwrapping coroutines), or None.

    Journaled results are validated back into this type on both live and resumed runs, so the
    agent sees equal values either way. Remembered per function (``typing.get_type_hints`` was
    a sixth of a recorded replay's time when asked on every effect).
    """
    target = getattr(fn, "__func__", fn)  # a bound method is a new object on every access
    try:
        return _RETURN_ADAPTERS[target]
    except (KeyError, TypeError):
        pass
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        return None  # not remembered: a forward reference may resolve later
    adapter = None
    if "return" in hints:
        ret = hints["return"]
        if typing.get_origin(ret) in (Awaitable, typing.Coroutine):
            ret = typing.get_args(ret)[-1]
        adapter = _adapter(ret)
    with contextlib.suppress(TypeError):  # not weakly referenceable (a builtin): not remembered
        _RETURN_ADAPTERS[target] = adapter
    return adapter
