"""``ctx.llm``: the agent's handle on the model, every call journaled.

The client builds :class:`~agentstream.llm.base.LLMRequest` objects and hands them to the
context's journal, which answers from the record when the step was already made and calls the
provider otherwise. ``parse`` adds structured output with bounded re-asking.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, TypeVar

import pydantic
from pydantic import BaseModel

from agentstream.failures import InvalidOutputError, RefusalError
from agentstream.llm.base import LLMRequest, LLMResponse

M = TypeVar("M", bound=BaseModel)

REASK_TEMPLATE = (
    "Your previous reply was not valid: {error}\n"
    "Reply again with only a JSON object that matches the required schema."
)


class LLMJournal(Protocol):
    """What the client needs from the context: a journaled call."""

    async def call_llm(
        self, request: LLMRequest, *, name: str, prompt_version: str | None
    ) -> LLMResponse:
        """Answer from the journal or call the provider and record the answer."""
        ...


@functools.lru_cache(maxsize=512)
def _json_schema(output_type: type[BaseModel]) -> dict[str, Any]:
    """An output type's JSON schema, computed once per type (it is costly; never mutate it)."""
    return output_type.model_json_schema()


def build_messages(
    *, system: str | None, user: str | None, messages: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Chat messages from a system prompt, a user prompt and/or explicit messages."""
    out: list[dict[str, Any]] = []
    if system is not None:
        out.append({"role": "system", "content": system})
    out.extend(messages or [])
    if user is not None:
        out.append({"role": "user", "content": user})
    if not out:
        raise ValueError("ctx.llm needs at least one of system=, user= or messages=")
    return out


class LLMClient:
    """The model as an agent sees it (``ctx.llm``).

    Args:
        journal: The event's context.
        model: Default model.
        prompt_version: Default prompt version recorded with each call.
    """

    def __init__(self, journal: LLMJournal, *, model: str, prompt_version: str | None) -> None:
        self._journal = journal
        self.model = model
        self.prompt_version = prompt_version

    async def __call__(
        self,
        user: str | None = None,
        *,
        system: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> LLMResponse:
        """Shorthand for :meth:`complete`."""
        return await self.complete(user=user, system=system, messages=messages, **options)

    async def complete(
        self,
        *,
        user: str | None = None,
        system: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        model: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        prompt_version: str | None = None,
        name: str = "llm",
        **params: Any,
    ) -> LLMResponse:
        """Make one journaled model call.

        Args:
            user: User prompt (appended last).
            system: System prompt (first).
            messages: Explicit chat messages, between the two.
            model: Model (default: the agent's).
            tools: Tool schemas (chat-completions shape).
            tool_choice: Tool choice setting.
            response_format: Structured output request.
            temperature: Sampling temperature.
            max_tokens: Completion token cap.
            prompt_version: Prompt version recorded with the decision.
            name: Step name in the journal.
            **params: Other sampling parameters.
        """
        request = LLMRequest(
            model=model or self.model,
            messages=build_messages(system=system, user=user, messages=messages),
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            params=params,
        )
        return await self._journal.call_llm(
            request, name=name, prompt_version=prompt_version or self.prompt_version
        )

    async def parse(
        self,
        output_type: type[M],
        *,
        user: str | None = None,
        system: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        retries: int = 2,
        name: str = "parse",
        **options: Any,
    ) -> M:
        """Ask for a structured answer and validate it against a pydantic model.

        An answer that does not parse or validate is re-asked with the validation error, at
        most ``retries`` times; every attempt is its own journaled call, so a resumed event
        replays the same attempts.

        Raises:
            RefusalError: The model refused.
            InvalidOutputError: No attempt produced a valid answer; carries every raw text.
        """
        schema = _json_schema(output_type)
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": output_type.__name__, "schema": schema},
        }
        conversation = build_messages(system=system, user=user, messages=messages)
        texts: list[str] = []
        last_error = ""
        for _ in range(retries + 1):
            response = await self.complete(
                messages=conversation, response_format=response_format, name=name, **options
            )
            if response.refusal or response.finish_reason in ("content_filter", "refusal"):
                texts.append(response.refusal or response.text or "")
                raise RefusalError(
                    f"model refused: {response.refusal or response.finish_reason}",
                    attempts=texts,
                )
            text = response.text or ""
            texts.append(text)
            try:
                return output_type.model_validate_json(text)
            except pydantic.ValidationError as exc:
                last_error = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                    for e in exc.errors()
                )
            conversation = [
                *conversation,
                {"role": "assistant", "content": text},
                {"role": "user", "content": REASK_TEMPLATE.format(error=last_error)},
            ]
        raise InvalidOutputError(
            f"no valid {output_type.__name__} after {retries + 1} attempt(s); last error: "
            f"{last_error}",
            attempts=texts,
        )
