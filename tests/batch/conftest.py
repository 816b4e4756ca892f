"""Shared setup for the batch tests: one MLflow store per test session holding a
registered churn model (two versions), reused read-only by every test through
MLFLOW_TRACKING_URI; each test still has its own FLOWSHIP_HOME, state database and tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests._caches import reset_caches

FEATURES = ["age", "tenure_months", "recency_days", "frequency", "monetary_total"]


def customers(n: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(start, start + n, dtype=np.int64),
            "age": rng.integers(18, 80, n).astype(np.int64),
            "tenure_months": rng.uniform(0, 120, n),
            "recency_days": rng.uniform(0, 365, n),
            "frequency": rng.uniform(0, 50, n),
            "monetary_total": rng.uniform(0, 5000, n),
        }
    )


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


@dataclass(frozen=True)
class ChurnStore:
    tracking_uri: str
    name: str = "Churn"


@pytest.fixture(scope="session")
def churn_store(tmp_path_factory: pytest.TempPathFactory) -> ChurnStore:
    from sklearn.linear_model import LogisticRegression

    from flowship._mlflow import client
    from flowship.registry import register_estimator

    home = tmp_path_factory.mktemp("churn_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        frame = customers(2000, seed=1)
        x = frame[FEATURES]
        y = (frame["recency_days"] / 365 + frame["tenure_months"] / -120 > 0.1).astype(int)
        for c in (1.0, 0.01):
            model = LogisticRegression(C=c, max_iter=500).fit(x, y)
            register_estimator("Churn", model, x.head(50))
        client().set_registered_model_alias("Churn", "production", "1")
        from flowship.config import get_settings

        uri = get_settings().resolved_tracking_uri
    reset_caches()
    return ChurnStore(uri)


@pytest.fixture
def churn(churn_store: ChurnStore, flowship_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The session's churn model store, visible to this test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", churn_store.tracking_uri)
    reset_caches()
    return churn_store


@pytest.fixture
def small_input(tmp_path: Path) -> Path:
    return write_parquet(tmp_path / "customers.parquet", customers(1000))
