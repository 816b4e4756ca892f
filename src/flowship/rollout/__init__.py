"""Progressive rollout with guardrails and automatic rollback (docs/rollout.md).

    from flowship.rollout import start, tick, run, status
    start("churn", candidate="challenger", steps="10,25,50,100", bake="30m")
    run("churn")          # the controller: steps, rolls back on a breach, promotes at 100%

It sits above ``deployments`` (traffic changes), ``monitoring`` (the prediction log,
the drift rule, alerts) and ``registry`` (the promotion at the last step).
"""

from flowship.rollout.controller import abort, owner_id, pause, resume, run, start, status, tick
from flowship.rollout.plan import DEFAULT_GUARDRAILS, GUARDRAILS, Guardrail, parse_guardrail

__all__ = [
    "DEFAULT_GUARDRAILS",
    "GUARDRAILS",
    "Guardrail",
    "abort",
    "owner_id",
    "parse_guardrail",
    "pause",
    "resume",
    "run",
    "start",
    "status",
    "tick",
]
