"""Step identity: which recorded step answers a journaled call, whatever order calls arrive in.

A step is identified by a stable key, not by its arrival position: its name plus its
occurrence among the event's steps of that name (``refund#0``, ``refund#1``), or an explicit key
the caller gives (``lookup@call_8f2e``, such as a tool call id). A step without a stored key
has the key a sequential run gives it: ``name#n`` for the n-th step of that name in position
order. That is the key of every step recorded before keys existed, so recorded histories replay
unchanged and no journal migration is needed; a step whose key differs from it (an explicit
key, or an occurrence reordered by a crash between concurrent steps) stores its key in ``meta``
(``step_key``).

Frameworks run parallel tool calls concurrently, and the order in which concurrent steps reach
the journal varies from run to run. A call placed under an occurrence key whose record has
another request fingerprint first takes an unused record of the same kind, name and
fingerprint (a concurrent sibling that started in another order this time); only when none is
left is the recorded step at its key a mismatch, for the non-determinism policy to decide.
Fingerprints are still checked: a changed request never silently reuses a record.

A new step gets the next position (``seq``) after every recorded one; positions only order
steps within the journal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from agentstream.journal.records import StepKind, StepRecord

__all__ = ["STEP_KEY", "Placement", "StepIndex"]

STEP_KEY = "step_key"
"""The ``meta`` field holding a step's key."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a journaled call goes.

    Attributes:
        seq: The step's position (the record's, when one answers it).
        key: The step's key.
        record: The recorded step at that key or a matching sibling, if any; the caller checks
            its kind, name and fingerprint as before (a difference is a mismatch).
    """

    seq: int
    key: str
    record: StepRecord | None


def _recorded_keys(recorded: list[StepRecord]) -> dict[int, str]:
    """Each record's key: the stored one, else ``name#n`` by position among its name."""
    counts: Counter[str] = Counter()
    keys: dict[int, str] = {}
    for rec in recorded:
        stored = rec.meta.get(STEP_KEY) if isinstance(rec.meta, dict) else None
        keys[rec.seq] = stored if isinstance(stored, str) else f"{rec.name}#{counts[rec.name]}"
        counts[rec.name] += 1
    return keys


class StepIndex:
    """The recorded steps of one event, handed out by key (one per Context).

    Args:
        recorded: The event's recorded steps.
    """

    def __init__(self, recorded: Iterable[StepRecord]) -> None:
        ordered = sorted(recorded, key=lambda r: r.seq)
        keys = _recorded_keys(ordered)
        self._by_key: dict[str, StepRecord] = {keys[r.seq]: r for r in ordered}
        self._record_keys = keys
        self._journaled: dict[str, set[int]] = {}
        for r in ordered:
            self._journaled.setdefault(r.name, set()).add(r.seq)
        self._keys: dict[int, str] = {}
        self._placed: dict[str, set[int]] = {}
        self._claimed: set[int] = set()
        self._occurrences: Counter[str] = Counter()
        self._next_seq = ordered[-1].seq + 1 if ordered else 0

    def place(self, kind: StepKind, name: str, fp: str, key: str | None = None) -> Placement:
        """Place one call: its key, its position and the record that answers it, if any.

        Args:
            kind: The step's kind.
            name: The step's name.
            fp: Its request fingerprint.
            key: An explicit key (a tool call id...); default: the occurrence of ``name``.
        """
        if key is None:
            step_key = f"{name}#{self._occurrences[name]}"
            self._occurrences[name] += 1
        else:
            step_key = f"{name}@{key}"
        rec = self._by_key.get(step_key)
        if rec is not None and rec.seq in self._claimed:
            rec = None
        if key is None and not _matches(rec, kind, name, fp):
            sibling = self._sibling(kind, name, fp)
            rec = sibling or rec
        if rec is None:
            seq = self._next_seq
            self._next_seq += 1
        else:
            seq = rec.seq
            self._claimed.add(seq)
            step_key = self._record_keys[seq]  # a sibling answers under its own key
        self._keys[seq] = step_key
        self._placed.setdefault(name, set()).add(seq)
        return Placement(seq, step_key, rec)

    def key_to_store(self, seq: int, name: str) -> str | None:
        """The key to store with the step written at ``seq``; None when its position gives it.

        Its position gives it when it is ``name#n``, exactly n steps of that name sit at lower
        positions in the journal, and no step of that name placed at a lower position may still
        be written (new positions only grow, so none can appear later).
        """
        key = self._keys.get(seq)
        journaled = self._journaled.setdefault(name, set())
        lower = sum(1 for s in journaled if s < seq)
        pending = any(s < seq and s not in journaled for s in self._placed.get(name, ()))
        journaled.add(seq)
        if key is None or (key == f"{name}#{lower}" and not pending):
            return None
        return key

    def _sibling(self, kind: StepKind, name: str, fp: str) -> StepRecord | None:
        """An unused record of the same request placed under another occurrence of the name."""
        prefix = f"{name}#"
        for k, rec in self._by_key.items():
            if (
                rec.seq not in self._claimed
                and k.startswith(prefix)
                and k[len(prefix) :].isdigit()
                and _matches(rec, kind, name, fp)
            ):
                return rec
        return None


def _matches(rec: StepRecord | None, kind: StepKind, name: str, fp: str) -> bool:
    return rec is not None and rec.kind == kind and rec.name == name and rec.fingerprint == fp
