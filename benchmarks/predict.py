"""Predictor against mlflow.pyfunc on the same models and inputs, in one process.

Registers a 30-feature logistic regression and a 100-tree random forest in a temporary
FLOWSHIP_HOME, then times, for each model:
- single-row predicts (flowship: a mapping of column -> [value], as the server passes
  it; MLflow: a one-row DataFrame, as ``mlflow models serve`` builds it);
- one 100 000-row pyarrow RecordBatch, as batch scoring reads it from Delta (flowship
  takes it as is; MLflow needs ``to_pandas()`` first, which is timed with it).
Prints p50/p99 and the ratios. Usage: .venv/bin/python benchmarks/predict.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np
from _isolate import isolate


def _register(name: str, estimator, frame) -> None:
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run():
        mlflow.sklearn.log_model(
            estimator,
            name="model",
            registered_model_name=name,
            input_example=frame.head(5),
            signature=infer_signature(frame, estimator.predict(frame)),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )


def _timings(fn, data, repeat: int) -> np.ndarray:
    for _ in range(min(100, repeat)):
        fn(data)
    times = np.empty(repeat)
    for i in range(repeat):
        start = time.perf_counter()
        fn(data)
        times[i] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the batch test")
    parser.add_argument("--repeat", type=int, default=2000, help="single-row predicts")
    args = parser.parse_args()
    isolate()
    home = tempfile.mkdtemp(prefix="flowship-bench-")
    os.environ["FLOWSHIP_HOME"] = home
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"  # not the cwd's store
    os.chdir(home)  # nor its ./mlruns for the artifacts
    warnings.simplefilter("ignore")

    import mlflow.pyfunc
    import pandas as pd
    import pyarrow as pa
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from flowship._mlflow import client
    from flowship.predict import Predictor

    client()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5000, 30)), columns=[f"f{i}" for i in range(30)])
    target = frame.f0 + 0.5 * frame.f1 - frame.f2 + rng.normal(0, 0.5, len(frame)) > 0
    models = {
        "logistic_regression": LogisticRegression(max_iter=1000),
        "random_forest_100": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    big = pd.DataFrame(rng.normal(size=(args.rows, 30)), columns=frame.columns)
    batch = pa.RecordBatch.from_pandas(big, preserve_index=False)
    del big
    print(f"{'model':<22}{'case':<12}{'flowship':>16}{'mlflow.pyfunc':>16}{'ratio':>9}")
    for name, estimator in models.items():
        _register(name, estimator.fit(frame, target.astype(int)), frame)
        ours = Predictor.load(f"models:/{name}/1")
        theirs = mlflow.pyfunc.load_model(f"models:/{name}/1")
        row = {c: [float(frame[c].iloc[0])] for c in frame.columns}
        row_frame = frame.head(1)
        assert (ours.predict(row) == theirs.predict(row_frame)).all()
        a = _timings(ours.predict, row, args.repeat)
        b = _timings(theirs.predict, row_frame, max(200, args.repeat // 10))
        for label, q in (("row p50", 50), ("row p99", 99)):
            fa, fb = np.percentile(a, q) * 1e6, np.percentile(b, q) * 1e6
            print(f"{name:<22}{label:<12}{fa:>13.1f} µs{fb:>13.1f} µs{fb / fa:>8.1f}x")
        a = _timings(ours.predict, batch, 5)
        b = _timings(lambda arrow, m=theirs: m.predict(arrow.to_pandas()), batch, 5)
        fa, fb = np.median(a), np.median(b)
        label = f"{args.rows // 1000}k batch"
        print(f"{name:<22}{label:<12}{fa * 1e3:>13.1f} ms{fb * 1e3:>13.1f} ms{fb / fa:>8.1f}x")
        print(f"{'':<22}backend: {ours.backend} ({ours.backend_reason})")


if __name__ == "__main__":
    main()
