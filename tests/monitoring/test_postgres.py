"""Monitor runs and alert state on the machine's real PostgreSQL."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.postgres


def test_runs_and_dedup_on_postgres(pg_url, cli, frame, write_frames, webhook):
    base, cur = write_frames(frame(1000, seed=1), frame(1000, seed=2, age_shift=10))
    args = [
        "monitor",
        "drift",
        "--baseline",
        base,
        "--current",
        cur,
        "--name",
        "pg",
        "--webhook",
        webhook.url,
    ]
    assert cli(*args).exit_code == 1
    assert cli(*args).exit_code == 1
    assert len(webhook.received) == 1  # deduplicated through PostgreSQL
    runs = json.loads(cli("monitor", "history", "--json").stdout)
    assert [r["alerts"][0]["delivery"] for r in runs] == ["suppressed", "sent"]

    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM monitor_runs")).scalar() == 2
        row = conn.execute(text("SELECT active, delivered, sends FROM monitor_alerts")).one()
    engine.dispose()
    assert tuple(row) == (True, True, 1)
