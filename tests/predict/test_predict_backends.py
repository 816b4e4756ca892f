"""Each backend against mlflow.pyfunc on the same inputs, the fallback paths, the cache."""

from __future__ import annotations

import json
import logging

import mlflow.pyfunc
import numpy as np
import pyarrow as pa
import pytest

from flowship.errors import InvalidInput, SchemaMismatch, UsageError
from flowship.predict import Predictor

FEATURES = ["age", "tenure", "recency", "frequency", "monetary"]


def rows(frame, columns=FEATURES):
    return {c: frame[c].tolist() for c in columns}


def pyfunc_predict(ref: str, frame):
    return np.asarray(mlflow.pyfunc.load_model(ref).predict(frame))


def sklearn_model(ref: str):
    import mlflow.sklearn

    return mlflow.sklearn.load_model(ref)


# A tree ensemble's backend is measured at load (choose._by_batch_size): ONNX Runtime, or
# the compiled forest when it clearly wins on this machine at that moment; either is right.
MEASURED = ("onnx", "forest")


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("lr", "linear"),  # compiled: faster than ONNX Runtime at every batch size
        ("rf", MEASURED),
        ("gb", MEASURED),
        ("reg", "linear"),
        ("rfr", MEASURED),
        ("words", MEASURED),  # a forest with string classes
        ("ft", "native"),
        ("mixed", "native"),
        ("custom", "pyfunc"),
        ("nosig", "pyfunc"),
    ],
)
def test_auto_backend_matches_mlflow_pyfunc(store, name, backend):
    ref = f"models:/{name}/1"
    p = Predictor.load(ref)
    if backend is MEASURED:
        assert p.backend in MEASURED, p.backend_reason
        if p.backend == "forest":  # only on a measured clear win
            assert "faster than ONNX Runtime on every batch" in p.backend_reason
    else:
        assert p.backend == backend, p.backend_reason
    columns = [c.name for c in p.input_columns] or FEATURES
    frame = store.data[columns].head(50)
    if name == "ft":
        frame = frame.abs()
    expected = pyfunc_predict(ref, frame)
    for data in (frame, rows(frame, columns), pa.Table.from_pandas(frame)):
        got = p.predict(data)
        assert got.shape == expected.shape
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", ["onnx", "native", "pyfunc"])
@pytest.mark.parametrize("name", ["lr", "rf", "reg"])
def test_each_forced_backend_matches_pyfunc(store, name, backend):
    ref = f"models:/{name}/1"
    p = Predictor.load(ref, backend=backend)
    assert p.backend == backend
    frame = store.data[FEATURES].head(40)
    expected = pyfunc_predict(ref, frame)
    got = p.predict(rows(frame))
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", ["onnx", "native"])
def test_binary_proba_is_the_positive_class(store, backend):
    p = Predictor.load("models:/gb/1", output="proba", backend=backend)
    frame = store.data[FEATURES].head(30)
    expected = sklearn_model("models:/gb/1").predict_proba(frame)[:, 1]
    got = p.predict(rows(frame))
    assert got.shape == (30,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert p.output_columns == ["probability"]


def test_multiclass_proba_has_one_column_per_class(store):
    p = Predictor.load("models:/rf/1", output="proba")
    frame = store.data[FEATURES].head(30)
    expected = sklearn_model("models:/rf/1").predict_proba(frame)
    got = p.predict(frame)
    assert got.shape == (30, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert p.output_columns == ["probability_0", "probability_1", "probability_2"]
    assert p.describe()["classes"] == [0, 1, 2]


def test_proba_on_a_regressor_is_refused(store):
    with pytest.raises(UsageError) as info:
        Predictor.load("models:/reg/1", output="proba")
    assert info.value.message == (
        "output='proba' needs a classifier with predict_proba, and LinearRegression is not one."
    )
    assert info.value.hint == "Use output='predict' for this model."


def test_proba_on_a_custom_pyfunc_is_refused(store):
    with pytest.raises(UsageError) as info:
        Predictor.load("models:/custom/1", output="proba")
    assert "flavor python_function has no native backend" in info.value.message


def test_unconvertible_model_falls_back_quietly_with_reason(store, caplog):
    with caplog.at_level(logging.INFO, logger="flowship.predict"):
        p = Predictor.load("models:/ft/1")
    assert p.backend == "native"
    assert p.backend_reason == (
        "native on NumPy: ONNX not used: float64 and float32 conversion failed: "
        "FunctionTransformer is not supported unless the transform function is None (= identity)"
    )
    assert any("backend native" in r.getMessage() for r in caplog.records)
    with pytest.raises(UsageError) as info:
        Predictor.load("models:/ft/1", backend="onnx")
    assert info.value.message.startswith("backend='onnx' cannot serve this model: ONNX not used")


def test_named_columns_use_a_dataframe(store):
    p = Predictor.load("models:/mixed/1")
    assert p.backend_reason == "native on a DataFrame: the signature has non-numeric columns"
    assert [(c.name, c.type) for c in p.input_columns] == [
        ("age", "double"),
        ("tenure", "double"),
        ("n_products", "long"),
        ("plan", "string"),
    ]
    with pytest.raises(SchemaMismatch) as info:
        p.predict({"age": [1.0], "tenure": [2.0], "n_products": [1], "plan": [3]})
    assert info.value.message == "Column 'plan' expects string, got number 3 in row 0."


def test_model_without_signature_accepts_anything_with_a_warning(store, caplog):
    with caplog.at_level(logging.WARNING, logger="flowship.predict"):
        p = Predictor.load("models:/nosig/1")
    assert p.input_columns == [] and p.backend == "pyfunc"
    assert "has no column signature" in caplog.text
    frame = store.data[FEATURES].head(5)
    np.testing.assert_array_equal(p.predict(rows(frame)), pyfunc_predict("models:/nosig/1", frame))
    with pytest.raises(InvalidInput) as info:
        p.predict({c: [] for c in FEATURES})
    assert info.value.message == "Input has no rows."


def test_model_errors_become_invalid_input(store):
    p = Predictor.load("models:/nosig/1")
    with pytest.raises(InvalidInput) as info:
        p.predict({"age": ["abc"]})
    assert info.value.message.startswith("Model 'nosig' version 1 could not score this input: ")


def test_onnx_conversion_is_cached_per_version(store, flowship_home):
    first = Predictor.load("models:/lr/1", output="proba")
    assert first.backend == "onnx" and "converted with skl2onnx" in first.backend_reason
    folder = flowship_home / "cache" / "onnx" / "lr" / "1"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["run_id"] == store.run_ids["lr"]
    assert (meta["ok"], meta["dtype"]) == (True, "float64")
    assert meta["toolchain"].startswith("skl2onnx ")
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    second = Predictor.load("models:/lr@production")
    assert "cached conversion" in second.backend_reason
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp
    frame = store.data[FEATURES].head(20)
    np.testing.assert_array_equal(second.predict(frame), pyfunc_predict("models:/lr/1", frame))


def test_failed_conversion_is_cached_too(store, flowship_home):
    Predictor.load("models:/ft/1")
    meta = json.loads((flowship_home / "cache" / "onnx" / "ft" / "1" / "meta.json").read_text())
    assert meta["ok"] is False
    again = Predictor.load("models:/ft/1")
    assert again.backend_reason.endswith("(cached)")
    # A failure recorded by another converter version is retried, not trusted.
    path = flowship_home / "cache" / "onnx" / "ft" / "1" / "meta.json"
    path.write_text(json.dumps(dict(meta, toolchain="skl2onnx 0.1, onnxruntime 0.1")))
    assert not Predictor.load("models:/ft/1").backend_reason.endswith("(cached)")


def test_corrupt_cache_entry_is_replaced(store, flowship_home):
    Predictor.load("models:/lr/1")
    folder = flowship_home / "cache" / "onnx" / "lr" / "1"
    (folder / "model.onnx").write_bytes(b"not an onnx graph")
    p = Predictor.load("models:/lr/1")
    # The cached graph fails to load, so the model is converted and cached again.
    assert p.backend == "linear" and "converted with skl2onnx" in p.backend_reason
    assert (folder / "model.onnx").read_bytes() != b"not an onnx graph"
    frame = store.data[FEATURES].head(10)
    np.testing.assert_array_equal(p.predict(frame), pyfunc_predict("models:/lr/1", frame))


def test_every_ref_form_loads(store):
    run_id = store.run_ids["lr"]
    for ref in (
        "models:/lr@production",
        "models:/lr/Production",
        "models:/lr/1",
        f"runs:/{run_id}/model",
        str(store.dirs["lr"]),
    ):
        p = Predictor.load(ref)
        assert p.ref == ref and p.backend == "linear"
        assert p.predict(rows(store.data.head(3))).shape == (3,)
    latest = Predictor.load("models:/lr/latest")
    assert (latest.model_name, latest.model_version, latest.run_id) == (
        "lr",
        "2",
        store.run_ids["lr2"],
    )


def test_describe(store):
    p = Predictor.load("models:/lr@production", output="proba")
    d = p.describe()
    assert d["name"] == "lr" and d["version"] == "1" and d["backend"] == "onnx"
    assert d["inputs"][0] == {"name": "age", "type": "double", "required": True}
    assert d["outputs"] == ["probability"] and d["output"] == "proba"
    assert d["reason"] == p.backend_reason


def test_validate_raises_what_predict_raises(store):
    p = Predictor.load("models:/lr/1")
    good = rows(store.data.head(2))
    p.validate(good)
    bad = dict(good, age=["x", 1.0])
    with pytest.raises(SchemaMismatch) as info:
        p.validate(bad)
    assert info.value.message == "Column 'age' expects double, got string value 'x' in row 0."


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"output": "labels"}, "Unknown output mode 'labels'."),
        ({"extra": "drop"}, "Unknown extra-column policy 'drop'."),
        ({"backend": "tensorrt"}, "Unknown backend 'tensorrt'."),
    ],
)
def test_bad_load_options(store, kw, message):
    with pytest.raises(UsageError) as info:
        Predictor.load("models:/lr/1", **kw)
    assert info.value.message == message


def test_fast_path_is_fast(store):
    import time

    p = Predictor.load("models:/lr/1", output="proba")
    row = {c: [float(store.data[c].iloc[0])] for c in FEATURES}
    p.predict(row)
    start = time.perf_counter()
    for _ in range(500):
        p.predict(row)
    per_call = (time.perf_counter() - start) / 500
    assert per_call < 1e-3, f"{per_call * 1e6:.0f} µs per single-row predict"


def test_optional_column_for_a_model_that_cannot_take_nan(store):
    p = Predictor.load("models:/opt/1")
    # The signature says 'monetary' is optional; this model cannot take NaN, so it is not.
    assert all(c.required for c in p.input_columns)
    good = rows(store.data.head(2))
    with pytest.raises(SchemaMismatch) as info:
        p.predict(dict(good, monetary=[1.0, float("nan")]))
    assert info.value.message == (
        "Column 'monetary' is required but has a missing value (NaN) in row 1."
    )
    without = {k: v for k, v in good.items() if k != "monetary"}
    with pytest.raises(SchemaMismatch) as info:
        p.predict(without)
    assert info.value.message == "Missing required column(s) 'monetary'."
    assert info.value.hint.startswith("This model cannot handle missing values.")


def test_optional_column_for_a_model_that_takes_nan(store):
    p = Predictor.load("models:/hgb/1", output="proba")
    assert [c.required for c in p.input_columns] == [True, True, True, True, False]
    frame = store.data[FEATURES].head(20).copy()
    frame.loc[::2, "monetary"] = np.nan
    expected = sklearn_model("models:/hgb/1").predict_proba(frame)[:, 1]
    np.testing.assert_allclose(p.predict(rows(frame)), expected, atol=1e-5)
    without = {k: v for k, v in rows(frame).items() if k != "monetary"}
    expected = sklearn_model("models:/hgb/1").predict_proba(frame.assign(monetary=np.nan))
    np.testing.assert_allclose(p.predict(without), expected[:, 1], atol=1e-5)


@pytest.mark.parametrize("name", ["rf", "lr"])
def test_large_batches_match_pyfunc_whichever_backend_serves_them(store, name):
    p = Predictor.load(f"models:/{name}/1", output="proba")
    frame = store.data[FEATURES].sample(3000, replace=True, random_state=1).reset_index(drop=True)
    expected = sklearn_model(f"models:/{name}/1").predict_proba(frame)
    if expected.shape[1] == 2:
        expected = expected[:, 1]
    np.testing.assert_allclose(p.predict(pa.RecordBatch.from_pandas(frame)), expected, atol=1e-5)


def test_by_size_sends_large_inputs_to_the_native_model(store):
    from flowship.predict.backends import BySize

    p = Predictor.load("models:/rf/1", backend="onnx")
    native = Predictor.load("models:/rf/1", backend="native")
    split = BySize(p._backend, native._backend, threshold=10)
    matrix = np.ascontiguousarray(store.data[FEATURES].to_numpy()[:20])
    small = np.ascontiguousarray(matrix[:5], dtype=p._backend.dtype)
    np.testing.assert_array_equal(split(matrix[:5]), p._backend(small))
    np.testing.assert_array_equal(split(matrix), native._backend(matrix))


def test_concurrent_predicts_from_threads(store):
    from concurrent.futures import ThreadPoolExecutor

    p = Predictor.load("models:/rf/1", output="proba")
    frames = [store.data[FEATURES].iloc[i : i + 7] for i in range(0, 280, 7)]
    expected = [p.predict(f) for f in frames]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda f: p.predict(rows(f)), frames * 5))
    for i, result in enumerate(got):
        np.testing.assert_array_equal(result, expected[i % len(frames)])


def test_pandas_nullable_and_arrow_nulls(store):
    import pandas as pd

    p = Predictor.load("models:/lr/1")
    frame = store.data[FEATURES].head(3).astype("Float64")
    np.testing.assert_array_equal(
        p.predict(frame), pyfunc_predict("models:/lr/1", frame.astype(float))
    )
    frame.loc[2, "age"] = pd.NA
    with pytest.raises(SchemaMismatch) as info:
        p.predict(frame)
    assert info.value.message == "Column 'age' is required but has a missing value (NaN) in row 2."
    table = pa.table(rows(store.data.head(3)))
    table = table.set_column(0, "age", pa.array([1.0, None, 3.0]))
    with pytest.raises(SchemaMismatch) as info:
        p.predict(table)
    assert info.value.message == "Column 'age' is required but has a missing value (NaN) in row 1."
    text = store.data[FEATURES].head(2).astype(str)
    with pytest.raises(SchemaMismatch) as info:
        p.predict(text)
    assert info.value.message.startswith("Column 'age' expects double, got string value '")


def test_pyfunc_predict_fn_predict_proba_is_followed(store):
    frame = store.data[FEATURES].head(10)
    p = Predictor.load("models:/pp/1")
    expected = pyfunc_predict("models:/pp/1", frame)
    assert expected.shape == (10, 2)
    np.testing.assert_allclose(p.predict(rows(frame)), expected, atol=1e-12)
    assert p.output_columns == ["probability_0", "probability_1"]
    assert "pyfunc_predict_fn='predict_proba'" in p.backend_reason
    q = Predictor.load("models:/pp/1", output="proba")
    assert q.backend == "onnx" and q.output_columns == ["probability"]
    np.testing.assert_allclose(q.predict(rows(frame)), expected[:, 1], atol=1e-5)


def test_runs_refs_are_cached_by_run(store, flowship_home):
    run_id = store.run_ids["gb"]
    first = Predictor.load(f"runs:/{run_id}/model")
    assert "converted with skl2onnx" in first.backend_reason
    assert (flowship_home / "cache" / "models" / "_runs" / run_id / "model" / "MLmodel").is_file()
    second = Predictor.load(f"runs:/{run_id}/model")
    assert "cached conversion" in second.backend_reason
    frame = store.data[FEATURES].head(10)
    np.testing.assert_array_equal(
        second.predict(frame), pyfunc_predict(f"runs:/{run_id}/model", frame)
    )


def test_scaler_pipeline_runs_in_onnx(store):
    p = Predictor.load("models:/lr@staging", output="proba")
    assert p.backend == "onnx" and p.model_version == "2"
    frame = store.data[FEATURES].head(25)
    expected = sklearn_model("models:/lr/2").predict_proba(frame)[:, 1]
    np.testing.assert_allclose(p.predict(rows(frame)), expected, atol=1e-5)


def test_corrupt_model_files_fail_to_load_cleanly(store, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(store.dirs["lr"], broken)
    (broken / "model.pkl").write_bytes(b"\x80\x04 not a pickle")
    with pytest.raises(InvalidInput) as info:
        Predictor.load(str(broken))
    assert info.value.message.startswith(f"Cannot load the model at {broken}: ")
    (broken / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(InvalidInput) as info:
        Predictor.load(str(broken))
    assert info.value.message.startswith(f"Cannot read the MLmodel file at {broken}: ")


def test_onnx_reload_skips_the_estimator_and_rechecks_parity(store, flowship_home):
    first = Predictor.load("models:/lr/1", output="proba")
    folder = flowship_home / "cache" / "onnx" / "lr" / "1"
    assert (folder / "fast-proba.npz").is_file()
    again = Predictor.load("models:/lr@production", output="proba")
    assert again.backend == "onnx" and "estimator not loaded" in again.backend_reason
    assert (again.classes, again.output_columns) == (first.classes, first.output_columns)
    assert [c.name for c in again.input_columns] == [c.name for c in first.input_columns]
    frame = store.data[FEATURES].head(40)
    np.testing.assert_array_equal(again.predict(rows(frame)), first.predict(rows(frame)))
    # Recorded outputs that the graph no longer reproduces: back to the full load.
    saved = dict(np.load(folder / "fast-proba.npz"))
    saved["proba"] = saved["proba"][:, ::-1].copy()
    with (folder / "fast-proba.npz").open("wb") as out:
        np.savez(out, **saved)
    checked = Predictor.load("models:/lr/1", output="proba")
    assert "estimator not loaded" not in checked.backend_reason
    assert "estimator not loaded" in Predictor.load("models:/lr/1", output="proba").backend_reason
    # Another output mode has its own record; a pinned backend never reads one.
    assert "estimator not loaded" not in Predictor.load("models:/lr/1").backend_reason
    assert Predictor.load("models:/lr/1", backend="native").backend == "native"


def test_tree_splits_match_scikit_learn_at_float32_boundaries(store):
    """scikit-learn compares tree thresholds with float32 features, so a float64 value
    just above a threshold can still go left there. Rows placed exactly there must get
    the native model's answer from every backend."""
    model = sklearn_model("models:/rf/1")
    base = store.data[FEATURES].head(1).to_numpy(dtype=np.float64)
    edge_rows = []
    for tree in model.estimators_:
        feature, threshold = tree.tree_.feature[0], tree.tree_.threshold[0]
        value = np.nextafter(threshold, np.inf)
        if np.float32(value) <= threshold:  # float64 goes right, scikit-learn goes left
            row = base.copy()
            row[0, feature] = value
            edge_rows.append(row)
    assert edge_rows, "no root split sits at a float32 boundary: pick another model"
    matrix = np.vstack(edge_rows)
    frame = dict(zip(FEATURES, matrix.T, strict=True))
    p = Predictor.load("models:/rf/1", output="proba")
    np.testing.assert_allclose(p.predict(frame), model.predict_proba(matrix), atol=1e-5)


def test_score_gives_the_float64_rows_it_scored_only_when_they_are_the_inputs_as_sent(store):
    """The prediction log keeps these rows instead of copying each request's features, so
    they must be the features as sent: a numeric signature with every column required."""
    lr = Predictor.load("models:/lr/1")
    data = rows(store.data.head(3))
    result, matrix = lr.score(data)
    np.testing.assert_array_equal(result, lr.predict(data))
    assert lr.matrix_columns == [c.name for c in lr.input_columns]
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, np.column_stack([data[n] for n in lr.matrix_columns]))
    hgb = Predictor.load("models:/hgb/1", output="proba")  # 'monetary' is optional (NaN)
    assert hgb.matrix_columns is None and hgb.score(data)[1] is None
    mixed = Predictor.load("models:/mixed/1")  # a text column
    assert mixed.matrix_columns is None
    mixed_columns = ["age", "tenure", "n_products", "plan"]
    assert mixed.score(rows(store.data.head(3), mixed_columns))[1] is None
