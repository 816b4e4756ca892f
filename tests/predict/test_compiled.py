"""Compiled forests and linear models: exactly scikit-learn's answers, and their place in
the Predictor (large batches beside ONNX, recorded for a reload without MLflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from flowship.predict import Predictor
from flowship.predict._forest import compile_forest
from flowship.predict._linear import compile_linear

FEATURES = ["age", "tenure", "recency", "frequency", "monetary"]
RNG = np.random.default_rng(3)
X = RNG.normal(size=(3000, 6))
TWO = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
THREE = (X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
WITH_NAN = np.where(RNG.random(X.shape) < 0.1, np.nan, X)


def _inputs() -> list[np.ndarray]:
    plain = RNG.normal(size=(5000, 6))
    holes = np.where(RNG.random(plain.shape) < 0.1, np.nan, plain)
    return [plain, holes, plain.astype(np.float32)]


FORESTS = {
    "rf depth 8": lambda: RandomForestClassifier(30, max_depth=8, random_state=0).fit(X, TWO),
    "rf three classes, NaN seen": lambda: RandomForestClassifier(15, random_state=0).fit(
        WITH_NAN, THREE
    ),
    "rf string labels": lambda: RandomForestClassifier(9, random_state=0).fit(
        X, np.array(["stay", "churn"])[TWO]
    ),
    "extra trees": lambda: ExtraTreesClassifier(12, random_state=0).fit(X, THREE),
    "rf regressor, NaN seen": lambda: RandomForestRegressor(10, random_state=0).fit(
        WITH_NAN, X[:, 0]
    ),
    "extra trees regressor": lambda: ExtraTreesRegressor(8, max_depth=12, random_state=0).fit(
        X, X[:, 0] * 3
    ),
}


@pytest.mark.parametrize("name", FORESTS)
def test_forest_gives_exactly_what_scikit_learn_gives(name):
    model = FORESTS[name]()
    outputs = ["predict", "proba"] if hasattr(model, "predict_proba") else ["predict"]
    for output in outputs:
        forest, why = compile_forest(model, output)
        assert forest is not None, why
        for data in _inputs():
            if output == "predict":
                expected = model.predict(data)
            else:
                expected = model.predict_proba(data)
                expected = expected[:, 1] if expected.shape[1] == 2 else expected
            np.testing.assert_array_equal(forest(data), expected)


def test_forest_splits_at_float32_boundaries_like_scikit_learn():
    """Values on, just above and just below each split threshold, in float64: scikit-learn
    rounds them to float32 first, so the compiled thresholds must agree on every one."""
    model = RandomForestClassifier(5, max_depth=6, random_state=0).fit(X, TWO)
    rows = []
    for tree in model.estimators_:
        inner = tree.tree_.children_left != -1
        for feature, threshold in zip(
            tree.tree_.feature[inner], tree.tree_.threshold[inner], strict=True
        ):
            for value in (threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, 0)):
                row = X[0].copy()
                row[feature] = value
                rows.append(row)
    data = np.array(rows)
    forest, _ = compile_forest(model, "proba")
    np.testing.assert_array_equal(forest(data), model.predict_proba(data)[:, 1])


LINEAR = {
    "logistic, two classes": lambda: LogisticRegression(max_iter=500).fit(X, TWO),
    "logistic, three classes": lambda: LogisticRegression(max_iter=500).fit(X, THREE),
    "logistic, string labels": lambda: LogisticRegression(max_iter=500).fit(
        X, np.array(["a", "b", "c"])[THREE]
    ),
    "linear regression": lambda: LinearRegression().fit(X, X @ np.arange(6.0) + 1),
    "ridge, no intercept": lambda: Ridge(fit_intercept=False).fit(X, X[:, 1]),
}


@pytest.mark.parametrize("name", LINEAR)
def test_linear_gives_what_scikit_learn_gives(name):
    model = LINEAR[name]()
    linear, why = compile_linear(model, "predict")
    assert linear is not None, why
    data = np.asfortranarray(RNG.normal(size=(5000, 6)))
    got, expected = linear(data), model.predict(data)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    else:
        np.testing.assert_array_equal(got, expected)


def test_what_is_not_compiled_says_why():
    boosted = GradientBoostingClassifier(n_estimators=3).fit(X, TWO)
    assert compile_forest(boosted, "predict") == (
        None,
        "GradientBoostingClassifier is not a random forest or extra-trees ensemble",
    )
    two_outputs = RandomForestRegressor(3).fit(X, np.c_[X[:, 0], X[:, 1]])
    assert compile_forest(two_outputs, "predict")[1] == "multi-output forests are not compiled"
    lr = LogisticRegression().fit(X, TWO)
    assert compile_linear(lr, "proba")[0] is None
    assert compile_linear(boosted, "predict")[0] is None


# ---------------------------------------------------------------- in the Predictor


def _batch(store, n: int = 6000) -> dict[str, np.ndarray]:
    frame = store.data[FEATURES].sample(n, replace=True, random_state=2)
    return {c: frame[c].to_numpy() for c in FEATURES}


def _sklearn(ref: str):
    import mlflow.sklearn

    return mlflow.sklearn.load_model(ref)


def _uses(predictor: Predictor, compiled: str, every: bool | None) -> bool:
    """The compiled backend answers every batch (named after it), or large ones only.
    ``None``: either, as the load's timing of small batches on this machine decided
    (choose._by_batch_size; ONNX Runtime usually wins them, but not on every machine)."""
    on_every = predictor.backend == compiled and f"{compiled}: compiled" in predictor.backend_reason
    on_large = (
        predictor.backend == "onnx" and f"use the {compiled} backend" in predictor.backend_reason
    )
    return {True: on_every, False: on_large, None: on_every or on_large}[every]


@pytest.mark.parametrize(
    ("name", "output", "compiled", "every"),
    [
        ("rf", "predict", "forest", None),
        ("rf", "proba", "forest", None),
        ("rfr", "predict", "forest", None),
        ("lr", "predict", "linear", True),  # one NumPy product: faster at any size
    ],
)
def test_large_batches_go_to_the_compiled_model_and_reload_without_the_estimator(
    store, flowship_home, name, output, compiled, every
):
    first = Predictor.load(f"models:/{name}/1", output=output)
    assert _uses(first, compiled, every), first.backend_reason
    data = _batch(store)
    matrix = np.column_stack([data[c] for c in FEATURES])
    model = _sklearn(f"models:/{name}/1")
    expected = model.predict(matrix) if output == "predict" else model.predict_proba(matrix)
    expected = expected[:, 1] if expected.ndim == 2 and expected.shape[1] == 2 else expected
    np.testing.assert_allclose(first.predict(data), expected, rtol=0, atol=1e-12)

    again = Predictor.load(f"models:/{name}/1", output=output)
    assert "estimator not loaded" in again.backend_reason
    assert _uses(again, compiled, every), again.backend_reason
    assert again.backend == first.backend  # the recorded choice, not a new measurement
    np.testing.assert_array_equal(again.predict(data), first.predict(data))


def test_a_recorded_forest_that_no_longer_holds_means_a_full_load(store, flowship_home):
    Predictor.load("models:/rf/1")
    record = flowship_home / "cache" / "onnx" / "rf" / "1" / "fast-predict.npz"
    saved = dict(np.load(record))
    saved["large_nodes"]["threshold"] += np.float32(1000)  # every split moves
    with record.open("wb") as out:
        np.savez(out, **saved)
    reloaded = Predictor.load("models:/rf/1")
    assert "estimator not loaded" not in reloaded.backend_reason
    assert _uses(reloaded, "forest", None), reloaded.backend_reason
    data = _batch(store)
    matrix = np.column_stack([data[c] for c in FEATURES])
    np.testing.assert_array_equal(reloaded.predict(data), _sklearn("models:/rf/1").predict(matrix))


def test_pinned_onnx_never_takes_the_recorded_compiled_backend(store):
    Predictor.load("models:/rf/1")
    pinned = Predictor.load("models:/rf/1", backend="onnx")
    assert pinned.backend == "onnx" and "forest" not in pinned.backend_reason


def test_a_warm_load_imports_neither_mlflow_nor_scikit_learn(store):
    """What makes `flowship score` start in a fraction of a second on a scheduled rerun."""
    Predictor.load("models:/rf/1")
    code = """
import json, sys
import numpy as np
from flowship.predict import Predictor
p = Predictor.load("models:/rf/1")
rows = {c: np.linspace(1, 50, 5000) for c in sys.argv[1:]}
p.predict(rows)
print(json.dumps({"reason": p.backend_reason,
                  "loaded": sorted(m for m in ("mlflow", "sklearn") if m in sys.modules)}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, *FEATURES],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "estimator not loaded" in report["reason"]
    assert report["loaded"] == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda nodes: nodes["left"].__setitem__(0, 10**9),  # a child past the end
        lambda nodes: nodes["feature"].__setitem__(0, -5),  # a feature before the row
        lambda nodes: nodes["threshold"].__setitem__(-1, 0.0),  # a leaf that walks on
    ],
)
def test_a_damaged_recorded_forest_is_refused_before_the_kernel_reads_it(
    store, flowship_home, damage
):
    """The kernel trusts every index it reads; a damaged record must never reach it."""
    Predictor.load("models:/rf/1")
    record = flowship_home / "cache" / "onnx" / "rf" / "1" / "fast-predict.npz"
    saved = dict(np.load(record))
    damage(saved["large_nodes"])
    with record.open("wb") as out:
        np.savez(out, **saved)
    reloaded = Predictor.load("models:/rf/1")
    assert "estimator not loaded" not in reloaded.backend_reason
    data = _batch(store)
    matrix = np.column_stack([data[c] for c in FEATURES])
    np.testing.assert_array_equal(reloaded.predict(data), _sklearn("models:/rf/1").predict(matrix))
