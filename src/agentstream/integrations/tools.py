"""Tool decorators with journal semantics: ``@agentstream.step`` and ``@agentstream.effect``.

A framework calls a tool function with the model's arguments; decorated, the call becomes a
journaled step of the running event (found with :func:`~agentstream.current_context`):

* ``@agentstream.step``: the tool runs once per event; a resumed or redelivered event gets the
  recorded result back;
* ``@agentstream.effect(reconcile=..., idempotent=...)``: the tool is a side effect through the
  intent ledger, with a deterministic idempotency key (read it inside the tool with
  :func:`idempotency_key`), reconciled or retried after a crash, never blindly repeated.

The decorated function keeps its signature, type hints and docstring, so PydanticAI
(``@agent.tool`` / ``@agent.tool_plain``) and the OpenAI Agents SDK (``@function_tool``) build the
same tool schema from it. A framework context argument (PydanticAI's ``RunContext``, the Agents
SDK's ``RunContextWrapper``/``ToolContext``) is passed to the tool but left out of the journaled
request; its ``tool_call_id``, when it has one, is the step's key, so parallel tool calls match
their records whatever order they run in. Without one, a call is keyed by its name and
arguments. A decorated tool called outside a handler raises
:class:`~agentstream.failures.NoCurrentContext`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, overload

from agentstream.codec import fingerprint, to_jsonable
from agentstream.current import current_context

__all__ = ["effect", "idempotency_key", "step"]

P = ParamSpec("P")
R = TypeVar("R")

_FRAMEWORK_MODULES = ("pydantic_ai", "agents")
_idempotency_key: ContextVar[str | None] = ContextVar("agentstream_effect_key", default=None)


def idempotency_key() -> str:
    """The idempotency key of the effect running now (inside an ``@effect`` tool).

    Raises:
        LookupError: Not called inside an ``@agentstream.effect`` function.
    """
    key = _idempotency_key.get()
    if key is None:
        raise LookupError("agentstream.idempotency_key() is only set inside an @effect function")
    return key


def _is_framework_context(value: Any) -> bool:
    return type(value).__module__.split(".")[0] in _FRAMEWORK_MODULES


def _journaled_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any], str | None]:
    """The arguments that identify a call, and the framework's tool call id if there is one."""
    call_id: str | None = None
    kept: list[Any] = []
    for value in args:
        if _is_framework_context(value):
            call_id = call_id or getattr(value, "tool_call_id", None)
        else:
            kept.append(value)
    kept_kw = {}
    for name, value in kwargs.items():
        if _is_framework_context(value):
            call_id = call_id or getattr(value, "tool_call_id", None)
        else:
            kept_kw[name] = value
    return kept, kept_kw, call_id


def _call_key(name: str, args: list[Any], kwargs: dict[str, Any], call_id: str | None) -> str:
    """A key naming this call among the event's calls of the tool."""
    if call_id:
        return f"{name}:{call_id}"
    return f"{name}:{fingerprint('tool', to_jsonable(args), to_jsonable(kwargs))[:16]}"


def _runner(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None
) -> Callable[..., Any]:
    """A callable with ``fn``'s kind (sync or async) and return type that runs the real call.

    It ignores the arguments the context passes it (the journaled ones) and calls ``fn`` with
    all of them, framework context included, with the effect's key readable inside.
    """
    if inspect.iscoroutinefunction(fn):

        async def run_async(*_: Any, **__: Any) -> Any:
            token = _idempotency_key.set(key)
            try:
                return await fn(*args, **kwargs)
            finally:
                _idempotency_key.reset(token)

        run: Callable[..., Any] = run_async
    else:

        def run_sync(*_: Any, **__: Any) -> Any:
            token = _idempotency_key.set(key)
            try:
                return fn(*args, **kwargs)
            finally:
                _idempotency_key.reset(token)

        run = run_sync
    # The result is validated into fn's return type; __wrapped__ resolves string annotations.
    returns = getattr(fn, "__annotations__", {}).get("return")
    run.__annotations__ = {} if returns is None else {"return": returns}
    run.__wrapped__ = fn  # type: ignore[attr-defined]
    return run


def _step_decorator(fn: Callable[P, Any], name: str | None) -> Callable[P, Awaitable[Any]]:
    step_name = name or fn.__name__

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> Any:
        ctx = current_context()
        kept, kept_kw, call_id = _journaled_arguments(args, kwargs)
        run = _runner(fn, args, kwargs, None)
        return await ctx.step(step_name, run, *kept, key=call_id, **kept_kw)

    tool.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return tool


@overload
def step(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...
@overload
def step(fn: Callable[P, R], /) -> Callable[P, Awaitable[R]]: ...
@overload
def step(*, name: str | None = None) -> Callable[[Callable[P, Any]], Callable[P, Any]]: ...


def step(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Make a function (a framework tool) a journaled step of the running event.

    Usable bare (``@agentstream.step``) or with a name (``@agentstream.step(name="lookup")``;
    default: the function's name). The decorated function is async.
    """
    if fn is not None:
        return _step_decorator(fn, name)
    return lambda f: _step_decorator(f, name)


def effect(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    reconcile: Callable[[str], Any] | None = None,
    idempotent: bool = False,
) -> Any:
    """Make a function (a framework tool) a side effect of the running event, done exactly once.

    Each call gets a deterministic idempotency key (from the event, the tool and its call id or
    arguments), readable inside the function with :func:`idempotency_key` to hand downstream.

    Args:
        fn: The function (when used bare, ``@agentstream.effect``).
        name: Step name (default: the function's name).
        reconcile: ``reconcile(idempotency_key)`` returns the effect's result if it already
            happened, else None; consulted when an earlier attempt died mid-effect.
        idempotent: The function is safe to call again with the same key.
    """

    def decorate(f: Callable[P, Any]) -> Callable[P, Awaitable[Any]]:
        effect_name = name or f.__name__

        @functools.wraps(f)
        async def tool(*args: P.args, **kwargs: P.kwargs) -> Any:
            ctx = current_context()
            kept, kept_kw, call_id = _journaled_arguments(args, kwargs)
            key = ctx.key(_call_key(effect_name, kept, kept_kw, call_id))
            run = _runner(f, args, kwargs, key)
            return await ctx.effect(
                effect_name,
                run,
                *kept,
                reconcile=reconcile,
                idempotent=idempotent,
                idempotency_key=key,
                key=call_id,
                **kept_kw,
            )

        tool.__signature__ = inspect.signature(f)  # type: ignore[attr-defined]
        return tool

    if fn is not None:
        return decorate(fn)
    return decorate
