"""Server-sent event streams of simulated answers, in each API's streaming format.

Each function takes a complete answer body and returns the SSE frames a streaming call of that
API receives for it: chat-completion chunks ending in ``data: [DONE]``, Responses API events
(``response.created`` ... ``response.completed``) and Messages API events (``message_start`` ...
``message_stop``). Text arrives in small deltas, tool arguments in pieces, as from a real model.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["chat_chunks", "message_events", "response_events", "split_text"]


def split_text(text: str, words: int = 3) -> list[str]:
    """``text`` in deltas of a few words each (concatenated, they give ``text`` back)."""
    if not text:
        return []
    pieces = text.split(" ")
    out = []
    for i in range(0, len(pieces), words):
        chunk = " ".join(pieces[i : i + words])
        out.append(chunk if i + words >= len(pieces) else chunk + " ")
    return out


def _data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\n".encode() + _data(payload)


def chat_chunks(answer: dict[str, Any], *, include_usage: bool) -> list[bytes]:
    """The ``chat.completion.chunk`` frames of a streamed chat completion."""
    choice = answer["choices"][0]
    message = choice["message"]
    head = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body: dict[str, Any] = {
            **head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return _data(body)

    frames = [chunk({"role": "assistant", "content": ""})]
    if message.get("refusal"):
        frames.append(chunk({"refusal": message["refusal"]}))
    for piece in split_text(message.get("content") or ""):
        frames.append(chunk({"content": piece}))
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        frames.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in split_text(fn["arguments"], 4):
            frames.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    frames.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        frames.append(_data({**head, "choices": [], "usage": answer["usage"]}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def response_events(response: dict[str, Any]) -> list[bytes]:
    """The event frames of a streamed Responses API call."""
    seq = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        frame = _event(kind, {"type": kind, "sequence_number": seq, **fields})
        seq += 1
        return frame

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    frames = [event("response.created", response=pending)]
    frames.append(event("response.in_progress", response=pending))
    for index, item in enumerate(response["output"]):
        if item["type"] == "function_call":
            frames.append(
                event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
            )
            for piece in split_text(item["arguments"], 4):
                frames.append(
                    event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                )
            frames.append(
                event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
        else:
            frames.append(
                event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "content": [], "status": "in_progress"},
                )
            )
            for c, part in enumerate(item["content"]):
                kind = part["type"]
                empty = {"type": kind, kind.removeprefix("output_"): ""}
                if kind == "output_text":
                    empty["annotations"] = []
                frames.append(
                    event(
                        "response.content_part.added",
                        item_id=item["id"],
                        output_index=index,
                        content_index=c,
                        part=empty,
                    )
                )
                field = "text" if kind == "output_text" else "refusal"
                delta_kind = (
                    "response.output_text.delta"
                    if kind == "output_text"
                    else "response.refusal.delta"
                )
                extra: dict[str, Any] = {"logprobs": []} if kind == "output_text" else {}
                for piece in split_text(part[field]):
                    frames.append(
                        event(
                            delta_kind,
                            item_id=item["id"],
                            output_index=index,
                            content_index=c,
                            delta=piece,
                            **extra,
                        )
                    )
                done_kind = delta_kind.replace(".delta", ".done")
                frames.append(
                    event(
                        done_kind,
                        item_id=item["id"],
                        output_index=index,
                        content_index=c,
                        **{field: part[field]},
                        **extra,
                    )
                )
                frames.append(
                    event(
                        "response.content_part.done",
                        item_id=item["id"],
                        output_index=index,
                        content_index=c,
                        part=part,
                    )
                )
        frames.append(event("response.output_item.done", output_index=index, item=item))
    frames.append(event("response.completed", response=response))
    return frames


def message_events(message: dict[str, Any]) -> list[bytes]:
    """The event frames of a streamed Messages API call."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
    }
    frames = [_event("message_start", {"type": "message_start", "message": start})]
    frames.append(_event("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opened = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in split_text(json.dumps(block["input"]), 4)
            ]
        else:
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"] or "")]
        frames.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            )
        )
        for delta in deltas:
            frames.append(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    frames.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    frames.append(_event("message_stop", {"type": "message_stop"}))
    return frames
