"""The deployments' session MLflow store (churn v1 in Production, v2 in Staging), a
recorded deployment with a prediction log, and rows written into that log as the
router writes them, at times the test chooses."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from tests._caches import reset_caches
from tests.deployments.conftest import deploy_store, write_spec  # noqa: F401
from tests.monitoring.conftest import webhook  # noqa: F401

SPEC = """
name: churn
model: churn
key: customer_id
variants:
  champion:   {ref: "@production", weight: 100}
  challenger: {ref: "@staging", weight: 0}
log: {table: prediction_log}
"""


@pytest.fixture
def store(deploy_store, tmp_path, monkeypatch):  # noqa: F811
    """A copy of the session store's registry for this test alone: a rollout promotes,
    which moves aliases, and other tests must still find churn@staging."""
    import shutil

    db = tmp_path / "mlflow-copy.db"
    shutil.copy(deploy_store.home / "mlflow.db", db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    reset_caches()
    return dataclasses.replace(deploy_store, uri=f"sqlite:///{db}")


@pytest.fixture
def deployment(cli, store, tmp_path):
    spec = SPEC.replace("{table: prediction_log}", "{table: prediction_log, flush_interval_s: 0.3}")
    result = cli("deployment", "apply", write_spec(tmp_path / "churn.yaml", spec))
    assert result.exit_code == 0, result.stderr
    return "churn"


@pytest.fixture
def traffic(flowship_home):
    """``traffic(variant, n, start, end, errors=0.0, latency=5.0, output=0.3)`` appends
    ``n`` answered requests of ``variant`` spread over [start, end) to the log and returns
    their request ids; ``role="shadow", ids=...``: a shadow's answers to those requests."""
    from deltalake import write_deltalake

    uri = str(flowship_home / "tables" / "prediction_log")
    rng = np.random.default_rng(0)

    def run(
        variant, n, start: datetime, end: datetime, *, errors=0.0, latency=5.0, output=0.3,
        role="primary", ids=None,
    ):  # fmt: skip
        span = (end - start).total_seconds()
        ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.random(n) * span)]
        failed = rng.random(n) < errors
        table = pa.table(
            {
                "request_id": ids or [f"r{variant}{i}{rng.integers(1 << 40)}" for i in range(n)],
                "client_request_id": pa.nulls(n, pa.string()),
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "date": pa.array([t.date() for t in ts], pa.date32()),
                "deployment": ["churn"] * n,
                "revision": pa.array([1] * n, pa.int64()),
                "variant": [variant] * n,
                "role": [role] * n,
                "model_name": ["churn"] * n,
                "model_version": ["1" if variant == "champion" else "2"] * n,
                "run_id": ["r"] * n,
                "key": [f"c{rng.integers(1 << 30)}" for _ in range(n)],
                "latency_ms": rng.gamma(4.0, latency / 4.0, n),
                "status": np.where(failed, "error", "ok").tolist(),
                "error": pa.nulls(n, pa.string()),
                "output": np.where(failed, np.nan, rng.normal(output, 0.05, n)),
            }
        )
        write_deltalake(uri, table, partition_by=["date"], mode="append")
        return table["request_id"].to_pylist()

    return run
