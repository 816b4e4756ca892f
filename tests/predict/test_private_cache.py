"""The model cache under FLOWSHIP_HOME is private, and a file planted in it is refused."""

from __future__ import annotations

import json
import logging
import os
import pickle
import stat

import numpy as np
import pytest

from flowship.predict import Predictor

FEATURES = ["age", "tenure", "recency", "frequency", "monetary"]


def _rows(store) -> dict[str, np.ndarray]:
    return {c: store.data[c].to_numpy() for c in FEATURES}


def _expected(store, ref: str) -> np.ndarray:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(ref).predict(store.data[FEATURES])


class _Announce:
    """A pickle that writes a file when it is loaded (any code could run there)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (_write_marker, (self.path,))


def _write_marker(path: str) -> object:
    with open(path, "w") as out:
        out.write("unpickled")
    return object()


def test_the_cache_is_made_private(store, flowship_home):
    Predictor.load("models:/lr/1")
    mode = (flowship_home / "cache").stat().st_mode
    assert stat.S_IMODE(mode) == 0o700


def test_a_planted_model_pickle_is_refused_and_downloaded_again(
    store, flowship_home, tmp_path, caplog
):
    Predictor.load("models:/lr/1", backend="native")
    folder = flowship_home / "cache" / "models" / "lr" / "1"
    (pickled,) = [p for p in folder.rglob("model.pkl")]
    marker = tmp_path / "unpickled"
    pickled.write_bytes(pickle.dumps(_Announce(str(marker))))
    with caplog.at_level(logging.WARNING):
        p = Predictor.load("models:/lr/1", backend="native")
    assert not marker.exists()
    assert "model.pkl differs from the file flowship wrote" in caplog.text
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/lr/1"))


def test_a_file_added_to_a_cached_model_is_refused(store, flowship_home, caplog):
    Predictor.load("models:/lr/1", backend="native")
    folder = flowship_home / "cache" / "models" / "lr" / "1"
    (folder / "extra.pkl").write_bytes(b"planted")
    with caplog.at_level(logging.WARNING):
        Predictor.load("models:/lr/1", backend="native")
    assert "extra.pkl was not written by flowship" in caplog.text
    assert not (folder / "extra.pkl").exists()  # the download replaced the folder


def test_a_planted_onnx_graph_and_record_are_refused(store, flowship_home, caplog):
    """Another model's graph and recorded outputs copied under lr/1's names: the recorded
    parity check alone would pass (the outputs match the planted graph), the digests do
    not."""
    Predictor.load("models:/lr/2")  # a different model: the planted files come from it
    Predictor.load("models:/lr/1")
    good = flowship_home / "cache" / "onnx" / "lr" / "1"
    other = flowship_home / "cache" / "onnx" / "lr" / "2"
    (good / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    saved = dict(np.load(other / "fast-predict.npz"))
    meta = json.loads(str(saved["meta"]))
    meta["run_id"] = store.run_ids["lr"]
    saved["meta"] = np.array(json.dumps(meta))
    with (good / "fast-predict.npz").open("wb") as out:
        np.savez(out, **saved)
    with caplog.at_level(logging.WARNING):
        p = Predictor.load("models:/lr/1")
    assert "not the file flowship wrote" in caplog.text
    assert "estimator not loaded" not in p.backend_reason
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/lr/1"))


def test_an_open_cache_is_emptied_before_use(store, flowship_home, caplog):
    Predictor.load("models:/lr/1")
    cache = flowship_home / "cache"
    os.chmod(cache, 0o777)  # anyone could have planted what is in it
    with caplog.at_level(logging.WARNING):
        p = Predictor.load("models:/lr/1")
    assert "was writable by group or others; emptied and made private" in caplog.text
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert "estimator not loaded" not in p.backend_reason  # nothing recorded was kept
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/lr/1"))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_cache_owned_by_another_user_is_not_used(store, flowship_home, caplog):
    cache = flowship_home / "cache"
    cache.mkdir(mode=0o700, parents=True)
    os.chown(cache, 12345, 12345)
    with caplog.at_level(logging.WARNING):
        p = Predictor.load("models:/lr/1")
    assert f"The cache {cache} is not used: it belongs to uid 12345" in caplog.text
    assert not list(cache.iterdir())
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/lr/1"))
