"""Replay: rebuild outputs from the journal, or try a candidate agent on recorded traffic."""

from agentstream.replay.parallel import replay_recorded_parallel
from agentstream.replay.runner import (
    RecordedReport,
    RecordedResult,
    ShadowReport,
    replay_recorded,
    replay_shadow,
    summarize,
)
from agentstream.replay.source import Selection

__all__ = [
    "RecordedReport",
    "RecordedResult",
    "Selection",
    "ShadowReport",
    "replay_recorded",
    "replay_recorded_parallel",
    "replay_shadow",
    "summarize",
]
