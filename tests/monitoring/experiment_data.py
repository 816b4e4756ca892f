"""Prediction logs with the deployments' schema, and late outcomes, for the A/B and
shadow tests: a real Delta table partitioned by date, written with deltalake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)


def experiment(
    *,
    keys: int = 4000,
    seed: int = 0,
    weights: dict[str, float] | None = None,
    quality: dict[str, float] | None = None,
    days: int = 60,
    deployment: str = "churn",
    shadow: str | None = None,
    shadow_quality: float = 1.0,
    versions: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(log, actuals)``. Each key arrives on a random day in the ``days`` before
    ``AS_OF``, is routed by ``weights`` and sends 1-3 requests over the next days; its
    outcome (churned 0/1) follows a true probability that each variant's score tracks with
    ``quality`` (1.0: as well as the champion; higher: better). ``versions``: the model
    version each variant serves (default 2, 3, ... in the order of ``weights``)."""
    rng = np.random.default_rng(seed)
    weights = weights or {"champion": 50, "challenger": 50}
    quality = quality or {}
    names = list(weights)
    share = np.array([weights[n] for n in names], dtype=float)
    variant = rng.choice(names, size=keys, p=share / share.sum())
    signal = rng.normal(0, 1.2, keys)
    truth = 1 / (1 + np.exp(-(signal - 1.0)))
    churned = (rng.random(keys) < truth).astype(np.int64)
    first = AS_OF - timedelta(days=days) + pd.to_timedelta(rng.random(keys) * days, unit="D")
    rows = []
    for i in range(keys):
        for r in range(int(rng.integers(1, 4))):
            ts = first[i] + timedelta(hours=float(r * rng.random() * 48))
            for role, name in (("primary", variant[i]), ("shadow", shadow)):
                if name is None:
                    continue
                q = shadow_quality if role == "shadow" else quality.get(name, 1.0)
                noise = rng.normal(0, 1.0 / q)
                score = float(1 / (1 + np.exp(-(signal[i] - 1.0 + noise))))
                rows.append(
                    {
                        "request_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)))),
                        "client_request_id": None,
                        "ts": ts,
                        "deployment": deployment,
                        "revision": 1,
                        "variant": name,
                        "role": role,
                        "model_name": "Churn",
                        "model_version": (versions or {}).get(
                            name, str(2 + names.index(name)) if name in names else "9"
                        ),
                        "run_id": "r" * 32,
                        "key": f"c{i:07d}",
                        "tenure": float(signal[i]),
                        "latency_ms": float(rng.gamma(2.0, 2.0 if role == "primary" else 3.0)),
                        "status": "ok",
                        "error": None,
                        "output": score,
                    }
                )
    log = pd.DataFrame(rows)
    # A shadow row answers the same request as its primary row: same request id.
    if shadow is not None:
        prim = log["role"] == "primary"
        log.loc[~prim.to_numpy(), "request_id"] = log.loc[prim.to_numpy(), "request_id"].to_numpy()
    log["ts"] = pd.to_datetime(log["ts"], utc=True)
    log = log[log["ts"] <= AS_OF].reset_index(drop=True)  # nothing logged after "now"
    actuals = pd.DataFrame({"customer_id": [f"c{i:07d}" for i in range(keys)], "churned": churned})
    return log, actuals


def write_log(log: pd.DataFrame, path: Path) -> str:
    """The prediction log as a Delta table partitioned by date, as the server writes it
    (``serving/prediction_log.py``: ``output`` holds the probability)."""
    from deltalake import write_deltalake

    frame = log.copy()
    frame["date"] = frame["ts"].dt.date
    write_deltalake(str(path), frame, partition_by=["date"], mode="overwrite")
    return str(path)
