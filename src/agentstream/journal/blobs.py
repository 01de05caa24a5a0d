"""Content addressing in the journal: large parts of LLM requests stored once, referenced by digest.

An agent that loops re-sends its whole conversation on every call, and every event of an agent
sends the same system prompt and tool schemas. Journaling each request verbatim would store the
same text again and again. Instead, before an LLM step is written, each large part of its request
(every message, the tool list, the response format) is replaced by ``{"$blob": "sha256:..."}``
and the part itself goes to the journal's blob table (``Store.put_blobs``) under that digest,
where an identical part written earlier already sits. Identical prompt prefixes therefore cost
one reference per message, not a copy.

Only the journaled *request* is compacted; the step's fingerprint is computed over the full
request and the recorded *result* is stored as it came, so replays stay byte-identical. Readers
that want the full request (``journal show``, dead-letter envelopes, shadow replay) call
:func:`expand_request` or :func:`expand_steps`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentstream.codec import canonical_json
from agentstream.journal.records import StepKind, StepRecord

if TYPE_CHECKING:
    from agentstream.journal.store import EventJournal

__all__ = [
    "BLOB_REF",
    "MIN_BLOB_CHARS",
    "blob_refs",
    "compact_request",
    "expand_request",
    "expand_steps",
    "refs_in",
]

BLOB_REF = "$blob"
"""Key of a blob reference, ``{"$blob": "sha256:..."}``, in a journaled LLM step's request."""


def blob_refs(value: Any, found: set[str] | None = None) -> set[str]:
    """Every blob digest referenced anywhere in a JSON value (a step request)."""
    found = set() if found is None else found
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(BLOB_REF), str):
            found.add(value[BLOB_REF])
        else:
            for item in value.values():
                blob_refs(item, found)
    elif isinstance(value, list):
        for item in value:
            blob_refs(item, found)
    return found


MIN_BLOB_CHARS = 128
"""Parts shorter than this (as canonical JSON) stay inline: a reference would not be smaller."""

_COMPACTED_FIELDS = ("tools", "response_format")


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and BLOB_REF in value


def _compact(value: Any, blobs: dict[str, str]) -> Any:
    if value is None:
        return None
    text = canonical_json(value)
    if len(text) < MIN_BLOB_CHARS:
        return value
    digest = _digest(text)
    blobs[digest] = text
    return {BLOB_REF: digest}


def compact_request(request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Replace the large parts of a journaled LLM request by blob references.

    Args:
        request: An :class:`~agentstream.llm.base.LLMRequest` as JSON data.

    Returns:
        The compacted request and the blobs it references (digest -> canonical JSON text).
    """
    blobs: dict[str, str] = {}
    out = dict(request)
    messages = request.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_compact(m, blobs) for m in messages]
    for name in _COMPACTED_FIELDS:
        if request.get(name) is not None:
            out[name] = _compact(request[name], blobs)
    return out, blobs


def refs_in(request: Any) -> set[str]:
    """The blob digests a compacted request references."""
    if not isinstance(request, dict):
        return set()
    found: set[str] = set()
    for m in request.get("messages") or []:
        if _is_ref(m):
            found.add(m[BLOB_REF])
    for name in _COMPACTED_FIELDS:
        if _is_ref(request.get(name)):
            found.add(request[name][BLOB_REF])
    return found


def expand_request(request: Any, blobs: Mapping[str, str]) -> Any:
    """The full request from a compacted one and its blobs.

    Raises:
        KeyError: A referenced blob is missing.
    """
    if not isinstance(request, dict):
        return request

    def expand(value: Any) -> Any:
        return json.loads(blobs[value[BLOB_REF]]) if _is_ref(value) else value

    out = dict(request)
    if isinstance(request.get("messages"), list):
        out["messages"] = [expand(m) for m in request["messages"]]
    for name in _COMPACTED_FIELDS:
        if name in request:
            out[name] = expand(request[name])
    return out


async def expand_steps(store: EventJournal, steps: Sequence[StepRecord]) -> list[StepRecord]:
    """Copies of ``steps`` whose LLM requests are expanded from the journal's blobs."""
    wanted: set[str] = set()
    for step in steps:
        if step.kind == StepKind.LLM:
            wanted |= refs_in(step.request)
    blobs = await store.get_blobs(wanted) if wanted else {}
    return [
        replace(step, request=expand_request(step.request, blobs))
        if step.kind == StepKind.LLM and refs_in(step.request)
        else step
        for step in steps
    ]
