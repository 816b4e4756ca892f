from __future__ import annotations

from flowship.quickstart import STEPS, Tour
from flowship.quickstart.score_step import score_step


def test_score_step_scores_once_then_nothing(churn, flowship_home):
    shown = []
    tour = Tour(home=flowship_home, model="Churn", show=lambda *a: shown.append(a))
    record = score_step(tour)
    assert (record.rows_in, record.rows_out, record.rows_skipped) == (2000, 0, 2000)
    rows = shown[0][2]
    assert [r[3] for r in rows] == [2000, 0]
    assert any(s.target.endswith("score_step:score_step") for s in STEPS)
