"""Token estimates made before a call, for budgets and admission control.

A provider counts tokens with its own tokenizer; what we need before the call is a cheap estimate
that is reconciled with the reported usage afterwards. One token per four characters is the
usual rule of thumb for English text on GPT- and Claude-family tokenizers. The LLM simulator
counts with the same rule, so against the simulator the prompt estimate is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any


def count_tokens(text: str) -> int:
    """Rough token count of a text: one token per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def message_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text a model reads from chat messages (contents and tool calls)."""
    parts: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(c.get("text", "")) for c in content if isinstance(c, dict))
        for call in m.get("tool_calls") or []:
            parts.append(json.dumps(call))
    return "\n".join(parts)


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of a chat-completions request body (messages and tools)."""
    tools = body.get("tools") or []
    return count_tokens(message_text(body.get("messages") or [])) + sum(
        count_tokens(json.dumps(t)) for t in tools
    )
