"""The journal: the source of truth for everything the runtime promises.

* :mod:`~agentstream.journal.records`: the records it speaks (event states, claims, steps...);
* :mod:`~agentstream.journal.store`: its contract, one protocol per role, and ``Store``;
* :mod:`~agentstream.journal.lifecycle`: the event state machine (claim, complete, dead-letter,
  redrive, park, prune decisions), written once for every backend;
* :mod:`~agentstream.journal.blobs`: content addressing of large LLM request parts;
* :mod:`~agentstream.journal.rows`, :mod:`~agentstream.journal.queries`,
  :mod:`~agentstream.journal.reads`: the tables' rows, shared queries and reads of both SQL
  backends;
* :mod:`agentstream.journal.sqlite` and :mod:`agentstream.journal.postgres`: the backends, which
  only run SQL, file for file.
"""

from agentstream.journal.records import (
    Claim,
    ClaimStatus,
    Completion,
    DeadLetterRecord,
    DeadLetterStatus,
    EventMeta,
    EventRecord,
    EventState,
    FailureRecord,
    OutboxRow,
    ParkedRecord,
    RedriveMode,
    ShadowResult,
    ShadowRun,
    StepKind,
    StepRecord,
    StepStatus,
)
from agentstream.journal.store import (
    EventJournal,
    OperatorTools,
    OutboxQueue,
    Retention,
    ShadowRuns,
    Store,
)

__all__ = [
    "Claim",
    "ClaimStatus",
    "Completion",
    "DeadLetterRecord",
    "DeadLetterStatus",
    "EventJournal",
    "EventMeta",
    "EventRecord",
    "EventState",
    "FailureRecord",
    "OperatorTools",
    "OutboxQueue",
    "OutboxRow",
    "ParkedRecord",
    "RedriveMode",
    "Retention",
    "ShadowResult",
    "ShadowRun",
    "ShadowRuns",
    "StepKind",
    "StepRecord",
    "StepStatus",
    "Store",
]
