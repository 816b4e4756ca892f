"""The ONNX Runtime backend: convert with skl2onnx, keep only if faithful, cache per version.

A conversion is trusted only when, on the parity sample, its labels equal the native
estimator's exactly and its probabilities (or regression values) agree within 1e-5
(relative to the values' scale for regressors). Double precision is tried first because
skl2onnx's float32 graphs often miss that bar (a tree threshold or a logit rounded to
float32); float32 is tried second, and either is kept only if it passes.

The outcome, success or failure, is cached under
``$FLOWSHIP_HOME/cache/onnx/<name>/<version>/`` so the next load of that version (another
worker, a restart, a rollback) neither converts again nor retries a failed conversion.
The parity check itself is re-run on every load: it is cheap and guards the cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from flowship.predict.artifacts import cache_dir
from flowship.predict.backends import Output, is_classifier, shape_proba
from flowship.predict.refs import ResolvedRef
from flowship.predict.signature import InputSchema

log = logging.getLogger(__name__)

TOLERANCE = 1e-5
_DTYPES = {"float64": np.float64, "float32": np.float32}


class OnnxBackend:
    """An ONNX Runtime session fed the checked matrix; one output fetched per call.

    ``classes`` set: labels are ``classes[argmax(probabilities)]``, which is how
    scikit-learn's forests and boosting pick them; ONNX's own label output breaks exact
    ties (0.5/0.5 in a forest with an even number of trees) the other way.
    """

    name = "onnx"
    wants_frame = False

    def __init__(
        self, session: Any, dtype: Any, *, output: Output, classes: np.ndarray | None
    ) -> None:
        self.session = session
        self.dtype = dtype
        self._input = session.get_inputs()[0].name
        outputs = session.get_outputs()
        if output == "proba":
            self._output, self._post = outputs[1].name, shape_proba
        elif classes is not None:
            self._output, self._post = outputs[1].name, self._argmax
        else:
            self._output, self._post = outputs[0].name, np.ravel
        self._classes = classes
        self._run = session.run

    def _argmax(self, proba: np.ndarray) -> np.ndarray:
        return self._classes.take(np.argmax(proba, axis=1))

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        result = self._post(self._run([self._output], {self._input: matrix})[0])
        # float32 graphs answer in float32; callers get float64 as from the native model.
        return result.astype(np.float64) if result.dtype == np.float32 else result


def try_backend(
    estimator: Any,
    schema: InputSchema,
    matrix: np.ndarray,
    frame: Any,
    resolved: ResolvedRef,
    output: Output,
    run_id: str | None,
) -> tuple[OnnxBackend | None, str]:
    """An ONNX backend and why it was chosen, or None and why not."""
    folder = cache_dir("onnx", resolved)
    cached = _read_cache(folder, run_id)
    classifier = is_classifier(estimator)
    if cached is not None:
        if not cached["ok"]:
            return None, f"ONNX not used: {cached['reason']} (cached)"
        candidates = [(cached["dtype"], (folder / "model.onnx").read_bytes())]
        how = "cached conversion"
    else:
        candidates = None
        how = "converted with skl2onnx"
    reasons = []
    for dtype_name, model_bytes in candidates or _conversions(estimator, matrix.shape[1]):
        if model_bytes is None:
            reasons.append(dtype_name)
            continue
        try:
            session = _session(model_bytes)
        except Exception as exc:  # a graph ONNX Runtime rejects (e.g. mixed precision)
            reasons.append(f"{dtype_name} rejected by ONNX Runtime: {_first_line(exc)}")
            continue
        problem, classes = _parity(
            session, estimator, matrix, frame, classifier, _DTYPES[dtype_name]
        )
        if problem is None:
            if cached is None:
                _write_cache(folder, run_id, ok=True, dtype=dtype_name, model=model_bytes)
            backend = OnnxBackend(session, _DTYPES[dtype_name], output=output, classes=classes)
            return backend, (
                f"onnx: {how} ({dtype_name}) matches the native model within "
                f"{TOLERANCE:g} on {len(matrix)} rows"
            )
        reasons.append(f"{dtype_name} {problem}")
    reason = "; ".join(reasons) or "no conversion"
    if cached is None:
        _write_cache(folder, run_id, ok=False, reason=reason)
    log.info("ONNX not used for %s: %s", resolved.uri, reason)
    return None, f"ONNX not used: {reason}"


def _conversions(estimator: Any, n_features: int):
    """(dtype name, ONNX bytes or None) for double then float precision; on failure the
    first item is the reason instead of the dtype name."""
    for dtype_name in ("float64", "float32"):
        try:
            yield dtype_name, _convert(estimator, n_features, dtype_name)
        except Exception as exc:  # skl2onnx raises many types for unsupported models
            yield f"{dtype_name} conversion failed: {_first_line(exc)}", None


def _convert(estimator: Any, n_features: int, dtype_name: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor = DoubleTensorType if dtype_name == "float64" else FloatTensorType
    options = {}
    for part in (estimator, getattr(estimator, "steps", [[None, None]])[-1][1]):
        if part is not None and is_classifier(part):
            options[id(part)] = {"zipmap": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = convert_sklearn(
            estimator, initial_types=[("input", tensor([None, n_features]))], options=options
        )
    return onx.SerializeToString()


def _session(model_bytes: bytes):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread: the server scales with workers and micro-batches, and a thread pool's
    # wake-up costs more than a single-row logistic regression takes to compute.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _parity(
    session: Any, estimator: Any, matrix: np.ndarray, frame: Any, classifier: bool, dtype: Any
) -> tuple[str | None, np.ndarray | None]:
    """(None, how to label) when the session reproduces the estimator on the sample, else
    (what differed, None). For classifiers the label rule is the classes array when
    argmax over ONNX's probabilities reproduces the native labels, else None (ONNX's label
    output, if that reproduces them)."""
    try:
        got = session.run(None, {session.get_inputs()[0].name: matrix.astype(dtype)})
    except Exception as exc:
        return f"failed to run in ONNX Runtime: {_first_line(exc)}", None
    if classifier:
        expected = np.asarray(estimator.predict_proba(frame))
        if len(got) < 2 or np.shape(got[1]) != expected.shape:
            return "probabilities have another shape than the native model's", None
        gap = float(np.max(np.abs(got[1] - expected)))
        if gap > TOLERANCE:
            return f"probabilities differ by up to {gap:.2g}", None
        labels = np.asarray(estimator.predict(frame))
        classes = np.asarray(estimator.classes_)
        if np.array_equal(classes.take(np.argmax(got[1], axis=1)), labels):
            return None, classes
        if np.array_equal(np.ravel(got[0]).astype(labels.dtype), labels):
            return None, None
        return "labels differ from the native model", None
    expected = np.asarray(estimator.predict(frame), dtype=np.float64)
    values = np.ravel(got[0]).astype(np.float64)
    if values.shape != expected.shape:
        return "output has another shape than the native model's", None
    gap = float(np.max(np.abs(values - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    return (None if gap <= TOLERANCE * scale else f"values differ by up to {gap:.2g}"), None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _read_cache(folder: Path | None, run_id: str | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("run_id") != run_id or (meta.get("ok") and not (folder / "model.onnx").is_file()):
        return None
    if meta.get("ok") and meta.get("dtype") not in _DTYPES:
        return None
    return meta


def _write_cache(folder: Path | None, run_id: str | None, **meta: Any) -> None:
    """Written to a temporary folder and renamed, so readers never see half a cache entry."""
    if folder is None:
        return
    model = meta.pop("model", None)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".onnx-", dir=folder.parent))
    try:
        if model is not None:
            (staging / "model.onnx").write_bytes(model)
        (staging / "meta.json").write_text(json.dumps({"run_id": run_id, **meta}))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except OSError as exc:  # a concurrent writer won; its entry is equivalent
        log.debug("ONNX cache write for %s lost a race: %s", folder, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
