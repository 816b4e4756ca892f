"""The lifecycle with flowship's state in the machine's PostgreSQL."""

import pytest

from flowship.registry import history, list_versions, promote, rollback, stage_at


@pytest.mark.postgres
def test_promote_rollback_history_on_postgresql(pg_url, register_two):
    from flowship.store import db

    register_two()
    assert db.engine().dialect.name == "postgresql"
    promote("ChurnPredictor", 1, "production")
    promote("ChurnPredictor", 2, "production", expect_current=1)
    middle = history("ChurnPredictor")[-1].at
    rollback("ChurnPredictor")
    assert {v.version: v.stage for v in list_versions("ChurnPredictor")} == {
        "1": "Production",
        "2": "Archived",
    }
    events = history("ChurnPredictor")
    assert [(e.version, e.to_stage, e.action) for e in events] == [
        ("1", "Production", "promote"),
        ("2", "Production", "promote"),
        ("1", "Archived", "promote"),
        ("1", "Production", "rollback"),
        ("2", "Archived", "rollback"),
    ]
    assert all(e.at.tzinfo is not None for e in events)
    assert stage_at("ChurnPredictor", middle) == "2"
