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


def test_concurrent_runs_send_once(pg_url, frame, write_frames, webhook):
    from concurrent.futures import ThreadPoolExecutor

    from flowship.monitoring import run_drift
    from flowship.monitoring.specs import DriftSpec

    base, cur = write_frames(frame(1000, seed=1), frame(1000, seed=2, age_shift=10))
    spec = DriftSpec(baseline=base, current=cur)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: run_drift(spec, name="race", webhook=webhook.url), range(4))
        )
    deliveries = sorted(r.alerts[0]["delivery"] for r in results)
    assert deliveries == ["sent", "suppressed", "suppressed", "suppressed"]
    assert len(webhook.received) == 1
