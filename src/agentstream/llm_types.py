"""The request and response of one model call, as fingerprinted and journaled.

They sit below the middleware (whose model-call hooks carry them) and below the LLM layer
(:mod:`agentstream.llm`: providers, admission, breakers), which both use them. Requests use the
chat-completions message shape (``{"role": ..., "content": ...}``) as the neutral form; each
provider translates it to its own API at the edge.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentstream.codec import fingerprint

__all__ = ["LLMRequest", "LLMResponse", "RateLimitSnapshot", "ToolCall", "Usage"]


class Usage(BaseModel):
    """Token usage reported by the provider."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class ToolCall(BaseModel):
    """A tool call requested by the model."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str = Field(description="The arguments as JSON text, exactly as the model wrote it.")


class LLMRequest(BaseModel):
    """One model call, as fingerprinted and journaled.

    Attributes:
        model: Model name as the provider knows it.
        messages: Chat messages (``role``/``content``, plus ``tool_calls``/``tool_call_id``).
        tools: Tool schemas in the chat-completions ``{"type": "function", ...}`` shape.
        tool_choice: ``auto``, ``none``, ``required`` or a specific function.
        response_format: Structured-output request (``{"type": "json_schema", ...}``).
        temperature: Sampling temperature.
        max_tokens: Cap on completion tokens.
        params: Any further sampling parameters (top_p, seed, stop...).
    """

    model_config = ConfigDict(frozen=True)

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def fingerprint(self) -> str:
        """SHA-256 over model, parameters, messages and tool schemas."""
        return fingerprint("llm", self.model_dump(mode="json"))


class RateLimitSnapshot(BaseModel):
    """What a provider's rate-limit headers said about the caller's quota at one answer.

    Attributes:
        limit_requests: Requests allowed per window (per minute for OpenAI and Anthropic).
        remaining_requests: Requests left in the window.
        reset_requests_s: Seconds until the request quota is fully restored.
        limit_tokens: Tokens allowed per window.
        remaining_tokens: Tokens left in the window.
        reset_tokens_s: Seconds until the token quota is fully restored.
    """

    model_config = ConfigDict(frozen=True)

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


class LLMResponse(BaseModel):
    """A model's answer as journaled.

    Attributes:
        id: Provider response id.
        model: Model that answered.
        text: Text content, if any.
        tool_calls: Tool calls, if any.
        finish_reason: ``stop``, ``length``, ``tool_calls``, ``content_filter``, ``refusal``...
        refusal: Refusal text when the provider reports one.
        usage: Token usage.
        cost_usd: Price of this call: as the provider reported it, else from the price table.
        cost_source: Where ``cost_usd`` came from: ``provider``, ``price_table`` or
            ``unpriced`` (no source knows the model: the cost counts as 0).
        latency_ms: Wall time of the call.
        raw: The provider's raw response body.
        rate_limits: The provider's rate-limit headers on this answer, for admission control;
            not journaled (it describes the quota at that moment, not the answer).
    """

    id: str = ""
    model: str = ""
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str = "stop"
    refusal: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    cost_source: str = "price_table"
    latency_ms: float = 0.0
    raw: dict[str, Any] | None = None
    rate_limits: RateLimitSnapshot | None = Field(default=None, exclude=True)

    def message(self) -> dict[str, Any]:
        """This answer as a chat message, to append to the conversation of the next call.

        Example::

            reply = await ctx.llm(messages=conversation, tools=TOOLS)
            conversation.append(reply.message())
            for call in reply.tool_calls:
                conversation.append(
                    {"role": "tool", "tool_call_id": call.id, "content": run(call)}
                )
        """
        out: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return out
