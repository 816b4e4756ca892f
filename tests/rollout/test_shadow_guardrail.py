"""The shadow_agreement guardrail: a shadow variant running the candidate's model,
paired with the champion's answers to the same requests in the prediction log."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from flowship import rollout
from tests.rollout.conftest import SPEC, write_spec
from tests.rollout.test_controller import _started, start, weights

SHADOWED = SPEC.replace(
    '  challenger: {ref: "@staging", weight: 0}\n',
    '  challenger: {ref: "@staging", weight: 0}\n  mirror:     {ref: "@staging", shadow: true}\n',
)


@pytest.fixture
def shadowed(cli, store, tmp_path):
    result = cli("deployment", "apply", write_spec(tmp_path / "churn.yaml", SHADOWED))
    assert result.exit_code == 0, result.stderr
    return "churn"


@pytest.fixture
def paired(traffic):
    """``paired(n, start, end, shadow=0.3)``: ``n`` champion answers (0.3 on average) and
    the shadow ``mirror``'s answers to the same requests."""

    def run(n, start: datetime, end: datetime, *, shadow=0.3):
        ids = traffic("champion", n, start, end)
        traffic("mirror", n, start, end, role="shadow", ids=ids, output=shadow)

    return run


def agreement(result: dict) -> dict:
    return next(g for g in result["guardrails"] if g["metric"] == "shadow_agreement")


def test_a_shadow_of_the_candidate_that_disagrees_rolls_it_back(cli, shadowed, traffic, paired):
    t0 = _started(start(cli))
    traffic("challenger", 200, t0, t0 + timedelta(minutes=5))
    traffic("champion", 200, t0, t0 + timedelta(minutes=5))
    # The candidate's model says "yes" (0.7) where the champion says "no" (0.3).
    paired(200, t0, t0 + timedelta(minutes=5), shadow=0.7)
    result = rollout.tick("churn", owner="a", now=t0 + timedelta(minutes=6))
    assert result["action"] == "rolled_back", result
    assert "shadow_agreement 0 (limit >= 0.9)" in result["reason"]
    assert weights(cli)["challenger"] == 0.0
    recorded = agreement(rollout.status("churn")["events"][-1])
    assert recorded["value"] == 0.0 and recorded["passed"] is False


def test_an_agreeing_shadow_passes_and_is_recorded_with_the_step(cli, shadowed, traffic, paired):
    t0 = _started(start(cli))
    traffic("challenger", 200, t0, t0 + timedelta(minutes=30))
    traffic("champion", 200, t0, t0 + timedelta(minutes=30))
    paired(200, t0, t0 + timedelta(minutes=30))
    result = rollout.tick("churn", owner="a", now=t0 + timedelta(minutes=31))
    assert result["action"] == "step", result
    assert "shadow_agreement=1" in result["reason"]
    assert agreement(rollout.status("churn")["events"][-1])["passed"] is True


def test_too_few_paired_shadow_answers_wait(cli, shadowed, traffic, paired):
    t0 = _started(start(cli))
    traffic("challenger", 200, t0, t0 + timedelta(minutes=30))
    traffic("champion", 200, t0, t0 + timedelta(minutes=30))
    paired(10, t0, t0 + timedelta(minutes=30))
    result = rollout.tick("churn", owner="a", now=t0 + timedelta(hours=5))
    assert result["action"] == "wait", result
    assert "not enough data yet: mirror 10 shadow answer(s) paired" in result["reason"]


def test_without_a_shadow_the_guardrail_does_not_apply(cli, deployment, traffic):
    t0 = _started(start(cli))
    traffic("challenger", 200, t0, t0 + timedelta(minutes=30))
    traffic("champion", 200, t0, t0 + timedelta(minutes=30))
    result = rollout.tick("churn", owner="a", now=t0 + timedelta(minutes=31))
    assert result["action"] == "step", result
    shown = agreement(result)
    assert shown["applies"] is False and shown["why"] == "no shadow of the candidate ran"
