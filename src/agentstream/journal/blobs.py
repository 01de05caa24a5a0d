"""Content addressing in the journal: large parts of LLM requests stored once, referenced by digest.

An agent that loops re-sends its whole conversation on every call, and every event of an agent
sends the same system prompt and tool schemas. Journaling each request verbatim would store the
same text again and again. Instead, before an LLM step is written, each large part of its request
is replaced by ``{"$blob": "sha256:..."}`` and the part itself goes to the journal's blob table
(``Store.put_blobs``) under that digest, where an identical part written earlier already sits:
in each message every long string (a message's content, a tool call's arguments), or the whole
message when it has none; the tool list and the response format whole. Identical prompt
prefixes therefore cost one reference per message, not a copy. A string's blob is the string's
canonical JSON, the same blob a source payload that carries the string verbatim references
(:mod:`agentstream.journal.packing`), so a prompt built from the event's text shares its copy.
Blob bodies never reference other blobs. Requests journaled before string blobs reference whole
messages only; they expand the same way.

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
    "compact_message",
    "compact_request",
    "digest_of",
    "expand_request",
    "expand_steps",
    "expand_value",
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


def digest_of(text: str) -> str:
    """The content address of a blob body, ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and BLOB_REF in value


def _compact(value: Any, blobs: dict[str, str]) -> Any:
    if value is None:
        return None
    text = canonical_json(value)
    if len(text) < MIN_BLOB_CHARS:
        return value
    digest = digest_of(text)
    blobs[digest] = text
    return {BLOB_REF: digest}


def _strings_out(value: Any, blobs: dict[str, str]) -> Any:
    """``value`` with each long string replaced by a reference to its blob."""
    if isinstance(value, str):
        return _compact(value, blobs) if len(value) >= MIN_BLOB_CHARS else value
    if isinstance(value, dict):
        return {k: _strings_out(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings_out(v, blobs) for v in value]
    return value


def compact_message(message: Any, blobs: dict[str, str]) -> Any:
    """One message with its long strings as blob references, or else as one blob if large.

    The blobs written go into ``blobs`` (digest -> canonical JSON text).
    """
    found: dict[str, str] = {}
    out = _strings_out(message, found)
    if not found:
        return _compact(message, blobs)
    blobs.update(found)
    return out


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
        out["messages"] = [compact_message(m, blobs) for m in messages]
    for name in _COMPACTED_FIELDS:
        if request.get(name) is not None:
            out[name] = _compact(request[name], blobs)
    return out, blobs


def refs_in(request: Any) -> set[str]:
    """The blob digests a compacted request references."""
    if not isinstance(request, dict):
        return set()
    found: set[str] = set()
    blob_refs(request.get("messages"), found)
    for name in _COMPACTED_FIELDS:
        if _is_ref(request.get(name)):
            found.add(request[name][BLOB_REF])
    return found


def expand_value(value: Any, blobs: Mapping[str, str]) -> Any:
    """``value`` with every blob reference in it replaced by the blob's JSON value.

    Raises:
        KeyError: A referenced blob is missing.
    """
    if isinstance(value, dict):
        if _is_ref(value):
            return json.loads(blobs[value[BLOB_REF]])
        return {k: expand_value(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_value(v, blobs) for v in value]
    return value


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
        out["messages"] = expand_value(request["messages"], blobs)
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
