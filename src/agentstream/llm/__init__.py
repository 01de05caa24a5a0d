"""agentstream.llm: model providers, the simulator, admission control and circuit breakers.

The stable names of the LLM layer; every other module under ``agentstream.llm`` is internal
(see docs/architecture.md).
"""

from agentstream.llm.admission import AdmissionControl, ModelLimits, SpendLimit
from agentstream.llm.anthropic_provider import AnthropicProvider
from agentstream.llm.base import LLMProvider, LLMRequest, LLMResponse, ToolCall, Usage
from agentstream.llm.breaker import CircuitBreaker
from agentstream.llm.breaker_state import BreakerPolicy
from agentstream.llm.openai_provider import OpenAIProvider
from agentstream.llm.pricing import ModelPrice, PriceTable
from agentstream.llm.routing import ModelRouter
from agentstream.llm.simulator import SimulatedProvider, SimulatorConfig, SimulatorServer

__all__ = [
    "AdmissionControl",
    "AnthropicProvider",
    "BreakerPolicy",
    "CircuitBreaker",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "ModelLimits",
    "ModelPrice",
    "ModelRouter",
    "OpenAIProvider",
    "PriceTable",
    "SimulatedProvider",
    "SimulatorConfig",
    "SimulatorServer",
    "SpendLimit",
    "ToolCall",
    "Usage",
]
