"""Every gate goes through the same checks: the interface, the result shape, storage."""

import json

import pytest

from flowship.registry import (
    ChecklistItem,
    GateResult,
    MetricThreshold,
    NoRegression,
    SignaturePresent,
)
from flowship.registry.gates import CHECKLIST, METRICS, Subject

GATES = [
    MetricThreshold("auc", 0.7),
    MetricThreshold("rmse", 3.0),
    NoRegression("auc", tolerance=0.01),
    NoRegression("log_loss", min_relative_change=0.05),
    SignaturePresent(),
    *[ChecklistItem(item) for item in CHECKLIST],
]


def _subject(version, value, *, signature=True, confirmed=()):
    return Subject(
        "M", version, signature, signature, frozenset(confirmed), score=lambda metric: value
    )


@pytest.mark.parametrize("gate", GATES, ids=lambda g: g.name)
@pytest.mark.parametrize("with_baseline", [True, False])
def test_every_gate_returns_a_storable_result(gate, with_baseline):
    candidate = _subject("2", 0.8)
    baseline = _subject("1", 0.75) if with_baseline else None
    result = gate.evaluate(candidate, baseline)
    assert isinstance(result, GateResult)
    assert result.name == gate.name and isinstance(result.passed, bool)
    stored = json.loads(json.dumps(result.to_dict()))
    assert stored == result.to_dict()
    assert gate.evaluate(candidate, baseline) == result  # deterministic


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_thresholds_point_the_metrics_way(metric):
    greater = METRICS[metric][0]
    gate = MetricThreshold(metric, 0.5)
    assert gate.evaluate(_subject("1", 0.6), None).passed is greater
    assert gate.evaluate(_subject("1", 0.4), None).passed is not greater
    assert gate.evaluate(_subject("1", 0.5), None).passed  # the limit itself passes


def test_signature_and_checklist_follow_the_subject():
    bare = _subject("1", 0.8, signature=False)
    assert not SignaturePresent().evaluate(bare, None).passed
    assert not ChecklistItem("input_schema_documented").evaluate(bare, None).passed
    assert ChecklistItem("input_schema_documented").evaluate(_subject("1", 0.8), None).passed
    assert not ChecklistItem("stakeholders_notified").evaluate(_subject("1", 0.8), None).passed
    done = _subject("1", 0.8, confirmed={"stakeholders_notified"})
    assert ChecklistItem("stakeholders_notified").evaluate(done, None).value == "confirmed"
    assert ChecklistItem("rollback_plan_ready").evaluate(done, _subject("0", 0.7)).passed
