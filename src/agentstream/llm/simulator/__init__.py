"""The LLM simulator: a seeded, OpenAI- and Anthropic-compatible model for tests, demos and benches.

``model`` holds the simulated model (:class:`LLMSimulator`, :class:`SimulatorConfig`), ``server``
serves it over real HTTP (:class:`SimulatorServer`: chat completions, Responses, Anthropic
Messages, streaming; ``apis`` and ``sse`` shape those wire formats), and ``provider`` calls it
in-process (:class:`SimulatedProvider`).
"""

from agentstream.llm.simulator.model import CallLog, LLMSimulator, SimulatedReply, SimulatorConfig
from agentstream.llm.simulator.provider import SimulatedProvider
from agentstream.llm.simulator.server import SimulatorServer

__all__ = [
    "CallLog",
    "LLMSimulator",
    "SimulatedProvider",
    "SimulatedReply",
    "SimulatorConfig",
    "SimulatorServer",
]
