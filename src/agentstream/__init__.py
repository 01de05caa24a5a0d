"""agentstream: LLM agents as consumers of Kafka topics and SQS queues.

Exactly-once decisions and effects on top of at-least-once delivery.
"""

from agentstream.agent import AgentSpec, Budget, NonDeterminismPolicy, Ordering
from agentstream.app import App
from agentstream.config import RuntimeConfig
from agentstream.context import Context
from agentstream.current import current_context
from agentstream.event import Event, Message, OutgoingRecord, TopicPartition
from agentstream.failures import (
    AgentStreamError,
    BudgetExceededError,
    ConfigurationError,
    ContextOverflowError,
    EffectOutcomeUnknown,
    FailureClass,
    FencedError,
    InvalidOutputError,
    NoCurrentContext,
    NonDeterminismError,
    OversizedPayload,
    PoisonError,
    PolicyViolationError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitedError,
    RefusalError,
    Retry,
    SchemaInvalidPayload,
    SemanticError,
    TransientError,
    UndecodablePayload,
)
from agentstream.integrations.tools import effect, idempotency_key, step
from agentstream.journal.signals import SignalError, SignalForUnknownEvent, SignalRejected
from agentstream.journal.waits import SignalReceipt, SignalStatus
from agentstream.llm import (
    AdmissionControl,
    AnthropicProvider,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    ModelLimits,
    OpenAIProvider,
    PriceTable,
    SimulatedProvider,
    SimulatorConfig,
    SpendLimit,
    ToolCall,
    Usage,
)
from agentstream.middleware import Middleware
from agentstream.observability import observe
from agentstream.testing import AppHarness
from agentstream.wait_steps import WaitTimeout

__version__ = "0.1.0"

__all__ = [
    "AdmissionControl",
    "AgentSpec",
    "AgentStreamError",
    "AnthropicProvider",
    "App",
    "AppHarness",
    "Budget",
    "BudgetExceededError",
    "ConfigurationError",
    "Context",
    "ContextOverflowError",
    "EffectOutcomeUnknown",
    "Event",
    "FailureClass",
    "FencedError",
    "InvalidOutputError",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "Middleware",
    "ModelLimits",
    "NoCurrentContext",
    "NonDeterminismError",
    "NonDeterminismPolicy",
    "OpenAIProvider",
    "Ordering",
    "OutgoingRecord",
    "OversizedPayload",
    "PoisonError",
    "PolicyViolationError",
    "PriceTable",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimitedError",
    "RefusalError",
    "Retry",
    "RuntimeConfig",
    "SchemaInvalidPayload",
    "SemanticError",
    "SignalError",
    "SignalForUnknownEvent",
    "SignalReceipt",
    "SignalRejected",
    "SignalStatus",
    "SimulatedProvider",
    "SimulatorConfig",
    "SpendLimit",
    "ToolCall",
    "TopicPartition",
    "TransientError",
    "UndecodablePayload",
    "Usage",
    "WaitTimeout",
    "__version__",
    "current_context",
    "effect",
    "idempotency_key",
    "observe",
    "step",
]
