"""The refund scenario's tool schemas, in the chat-completions and the Anthropic shapes."""

from __future__ import annotations

from typing import Any

OPENAI_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "refund",
            "description": "Refund an order.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "cents": {"type": "integer", "minimum": 1, "maximum": 5000},
                },
                "required": ["order_id", "cents"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "order_status",
            "description": "Look an order up.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
]

ANTHROPIC_TOOLS: list[Any] = [
    {
        "name": t["function"]["name"],
        "description": t["function"]["description"],
        "input_schema": t["function"]["parameters"],
    }
    for t in OPENAI_TOOLS
]
