"""A candidate for shadow replay: a new prompt for enterprise customers only.

Requests of standard tickets are unchanged, so shadow replay answers them from the journal; the
enterprise tickets get a fresh model call, and their refunds (new effect requests) are
suppressed, never executed::

    agentstream replay examples.refund_desk:app --agent triage --mode shadow \\
        --candidate examples.refund_desk_candidate:app --json report.json --html report.html
"""

from __future__ import annotations

from examples.refund_desk import PROMPT, make_app

ENTERPRISE_PROMPT = (
    PROMPT + " Enterprise customers have a service-level agreement: never use the low priority, "
    "and prefer a refund over an apology when an order is late."
)

app = make_app(lambda t: ENTERPRISE_PROMPT if t.tier == "enterprise" else PROMPT, seed=7)
