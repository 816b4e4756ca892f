"""The quickstart's serving step starts a real server and answers the seed's body."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_serve_step_scores_the_seed_body_and_stops():
    from sklearn.linear_model import LogisticRegression

    from flowship._mlflow import client
    from flowship.quickstart.data import FEATURES, TARGET, churn_frame
    from flowship.quickstart.serve_step import serve_step
    from flowship.registry import register_estimator

    frame = churn_frame(500)
    model = LogisticRegression(max_iter=1000).fit(frame[list(FEATURES)], frame[TARGET])
    version = register_estimator("ChurnPredictor", model, frame[list(FEATURES)].head(20))
    client().set_registered_model_alias("ChurnPredictor", "production", version.version)

    lines: list[str] = []
    predictions = serve_step(say=lines.append)
    assert len(predictions) == 3
    assert all(0.0 <= p <= 1.0 for p in predictions)
    assert lines[0].startswith("$ flowship serve models:/ChurnPredictor@production")
    assert any("customer 500000:" in line for line in lines)
    assert lines[-1] == "Server stopped."


def test_serve_step_fails_with_a_clear_message_for_an_unknown_model():
    from flowship.errors import Unavailable
    from flowship.quickstart.serve_step import serve_step

    with pytest.raises(Unavailable, match="did not become ready.*not registered"):
        serve_step("models:/Nope@production")
