"""Circuit-breaker rules: which failures are the provider's and which are the event's."""

from __future__ import annotations

from agentstream.failures import ProviderUnavailable
from agentstream.llm.base import LLMRequest, LLMResponse
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.breaker_state import (
    BreakerPolicy,
    BreakerState,
    BreakerStatus,
    on_admit,
    on_failure,
    on_success,
)


class Endpoint:
    """A provider stand-in with a name: the breaker only reads its endpoint."""

    name = "endpoint-a"

    async def complete(self, request: LLMRequest, *, step_key: str) -> LLMResponse:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def request(model: str = "m") -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}])


def test_threshold_failures_in_a_row_open_the_breaker_and_one_probe_closes_it() -> None:
    policy = BreakerPolicy(threshold=3, open_s=2.0, max_open_s=5.0)
    state = BreakerState()
    for i in range(2):
        on_failure(state, policy, 10.0 + i, "down")
    assert state.status == BreakerStatus.CLOSED
    on_failure(state, policy, 12.0, "down")
    assert state.status == BreakerStatus.OPEN
    assert on_admit(state, policy, 13.0) == 1.0  # still open: wait
    assert on_admit(state, policy, 14.0) is None  # the probe goes
    assert state.status == BreakerStatus.HALF_OPEN
    assert on_admit(state, policy, 14.1) is not None  # only one probe at a time
    on_failure(state, policy, 15.0, "still down")
    assert state.status == BreakerStatus.OPEN and state.open_until == 19.0  # doubled
    assert on_success(state) and state.status == BreakerStatus.CLOSED and state.failures == 0


def test_old_failures_do_not_add_up_to_an_open_breaker() -> None:
    policy = BreakerPolicy(threshold=2, window_s=5.0)
    state = BreakerState()
    on_failure(state, policy, 0.0, "blip")
    on_failure(state, policy, 10.0, "blip")
    assert state.status == BreakerStatus.CLOSED and state.failures == 1


async def test_a_call_that_keeps_failing_while_the_provider_answers_others_is_the_events() -> None:
    breaker = CircuitBreaker(BreakerPolicy(threshold=3), retry_delay_s=0.0)
    await breaker.start(None)
    provider = Endpoint()
    poison = breaker.call("agent", provider, request(), None)
    healthy = breaker.call("agent", provider, request(), None)
    verdicts = []
    for _ in range(3):
        await poison.admit()
        verdicts.append(await poison.record(None, ProviderUnavailable("500 for this one")))
        await healthy.admit()
        await healthy.record(LLMResponse(text="ok"), None)  # the provider answers others
    # Two waits for the provider, then the third failure in a row is the event's own.
    assert verdicts[:2] != [None, None] and verdicts[2] is None
    state = breaker.state("endpoint-a/m")
    assert state is not None and state.status == BreakerStatus.CLOSED
    assert not breaker.should_pause("agent")


async def test_while_open_a_call_goes_to_the_fallback_model() -> None:
    breaker = CircuitBreaker(BreakerPolicy(threshold=1, open_s=60.0))
    await breaker.start(None)
    provider = Endpoint()
    first = breaker.call("agent", provider, request(), "backup")
    await first.admit()
    assert await first.record(None, ConnectionError("refused")) == 0.0  # open: wait, no attempt
    call = await first.admit()
    assert call.model == "backup" and first.answered_by == "backup"
