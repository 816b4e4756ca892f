"""The ONNX Runtime backend: convert with skl2onnx, keep only if faithful, cache per version.

A conversion is trusted only when, on the parity sample, its labels equal the native
estimator's exactly and its probabilities (or regression values) agree within 1e-5
(relative to the values' scale for regressors). Double precision is tried first because
skl2onnx's float32 graphs often miss that bar (a logit rounded to float32); float32 is
tried second, and either is kept only if it passes. Bare tree models are the exception:
scikit-learn itself compares their thresholds in float32, so float32 comes first there.

The outcome, success or failure, is cached under
``$FLOWSHIP_HOME/cache/onnx/<name>/<version>/`` so the next load of that version (another
worker, a restart, a rollback) neither converts again nor retries a failed conversion.
The parity check itself is re-run on every load: it is cheap and guards the cache. A
cached graph or recorded load is read only if its SHA-256 is the one recorded when it
was written (``flowship.cache``), so a file planted under its name is never run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from flowship import cache
from flowship.predict._forest import Forest
from flowship.predict._linear import Linear
from flowship.predict.artifacts import cache_dir
from flowship.predict.backends import BySize, Output, is_classifier, shape_proba
from flowship.predict.refs import ResolvedRef
from flowship.predict.signature import InputColumn, InputSchema

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
    contiguous = True  # ONNX Runtime wants row-major input

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
        # (parity matrix, native outputs on it, classifier?) when built by a full load,
        # kept so the load can be recorded for a fast reload (save_fast).
        self.evidence: tuple[np.ndarray, Any, bool] | None = None

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
    """An ONNX backend and why it was chosen, or None and why not. ``matrix`` and
    ``frame`` hold the same parity sample, which the native model must accept."""
    folder = cache_dir("onnx", resolved)
    cached = _read_cache(folder, run_id)
    classifier = is_classifier(estimator)
    expected = _reference(estimator, frame, classifier)
    if cached is not None and not cached["ok"]:
        return None, f"ONNX not used: {cached['reason']} (cached)"
    if cached is not None:
        candidate = [(cached["dtype"], cached["model"])]
        found, _ = _first_faithful(candidate, matrix, expected, classifier)
        if found is not None:
            dtype_name, _, session, classes = found
            backend = OnnxBackend(session, _DTYPES[dtype_name], output=output, classes=classes)
            backend.evidence = (matrix, expected, classifier)
            return backend, _chosen("cached conversion", dtype_name, len(matrix))
        log.warning(
            "The cached ONNX model in %s is not faithful any more; converting again.", folder
        )
    found, reason = _first_faithful(
        _conversions(estimator, matrix.shape[1]), matrix, expected, classifier
    )
    if found is None:
        _write_cache(folder, run_id, ok=False, reason=reason)
        log.info("ONNX not used for %s: %s", resolved.uri, reason)
        return None, f"ONNX not used: {reason}"
    dtype_name, model_bytes, session, classes = found
    _write_cache(folder, run_id, ok=True, dtype=dtype_name, model=model_bytes)
    backend = OnnxBackend(session, _DTYPES[dtype_name], output=output, classes=classes)
    backend.evidence = (matrix, expected, classifier)
    return backend, _chosen("converted with skl2onnx", dtype_name, len(matrix))


def _chosen(how: str, dtype_name: str, rows: int) -> str:
    within = f"within {TOLERANCE:g} on {rows} rows"
    return f"onnx: {how} ({dtype_name}) matches the native model {within}"


def _first_faithful(candidates, matrix: np.ndarray, expected: Any, classifier: bool):
    """((dtype name, ONNX bytes, session, label classes), "") for the first faithful candidate, else
    (None, why none was)."""
    reasons: list[str] = []
    for dtype_name, model_bytes in candidates:
        if model_bytes is None:  # the conversion failed; dtype_name holds why
            reasons.append(dtype_name)
            continue
        try:
            session = _session(model_bytes)
        except Exception as exc:  # a graph ONNX Runtime rejects (e.g. mixed precision)
            reasons.append(f"{dtype_name} graph rejected by ONNX Runtime: {_first_line(exc)}")
            continue
        typed = matrix.astype(_DTYPES[dtype_name])
        problem, classes = _parity(session, typed, expected, classifier)
        if problem is None:
            return (dtype_name, model_bytes, session, classes), ""
        reasons.append(f"{dtype_name} {problem}")
    return None, _merge(reasons) or "no conversion"


def _merge(reasons: list[str]) -> str:
    """'float64 X; float32 X' reads better as 'float64 and float32 X'."""
    if len(reasons) == 2:
        (a, rest_a), (b, rest_b) = (r.partition(" ")[::2] for r in reasons)
        if rest_a == rest_b:
            return f"{a} and {b} {rest_a}"
    return "; ".join(reasons)


def _conversions(
    estimator: Any,
    n_features: int,
    *,
    precisions: tuple[str, ...] | None = None,
    opset: int | None = None,
):
    """(dtype name, ONNX bytes) in the order to try (``precisions``, default the
    Predictor's order); on failure (reason, None). ``opset``: the ONNX opset to target
    (default: the newest skl2onnx knows)."""
    for dtype_name in precisions or _precisions(estimator):
        try:
            yield dtype_name, _convert(estimator, n_features, dtype_name, opset)
        except Exception as exc:  # skl2onnx raises many types for unsupported models
            yield f"{dtype_name} conversion failed: {_first_line(exc)}", None


def _precisions(estimator: Any) -> tuple[str, str]:
    """Double precision first, except for bare tree models: scikit-learn compares their
    thresholds with float32 features, so a float64 graph sends a value just above a
    threshold right where scikit-learn sends it left (a parity sample rarely holds such a
    value; real traffic does)."""
    trees = getattr(estimator, "estimators_", None)
    if hasattr(estimator, "tree_") or (
        trees is not None and all(hasattr(t, "tree_") for t in np.ravel(trees))
    ):
        return ("float32", "float64")
    return ("float64", "float32")


def _convert(estimator: Any, n_features: int, dtype_name: str, opset: int | None = None) -> bytes:
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
            estimator,
            initial_types=[("input", tensor([None, n_features]))],
            options=options,
            target_opset=opset,
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


def _reference(estimator: Any, frame: Any, classifier: bool) -> Any:
    if classifier:
        return (
            np.asarray(estimator.predict(frame)),
            np.asarray(estimator.predict_proba(frame)),
            np.asarray(estimator.classes_),
        )
    return np.asarray(estimator.predict(frame), dtype=np.float64)


def _parity(
    session: Any, matrix: np.ndarray, expected: Any, classifier: bool
) -> tuple[str | None, np.ndarray | None]:
    """(None, label rule) when the session reproduces the native outputs, else (what
    differed, None). The label rule is the classes array when argmax over ONNX's
    probabilities gives the native labels, else None (ONNX's own label output)."""
    try:
        got = session.run(None, {session.get_inputs()[0].name: matrix})
    except Exception as exc:
        return f"failed to run in ONNX Runtime: {_first_line(exc)}", None
    if classifier:
        labels, proba, classes = expected
        if len(got) < 2 or np.shape(got[1]) != proba.shape:
            return "probabilities have another shape than the native model's", None
        gap = float(np.max(np.abs(got[1] - proba)))
        if gap > TOLERANCE:
            return f"probabilities differ by up to {gap:.2g}", None
        if np.array_equal(classes.take(np.argmax(got[1], axis=1)), labels):
            return None, classes
        if np.array_equal(np.ravel(got[0]).astype(labels.dtype), labels):
            return None, None
        return "labels differ from the native model", None
    values = np.ravel(got[0]).astype(np.float64)
    if values.shape != expected.shape:
        return "output has another shape than the native model's", None
    gap = float(np.max(np.abs(values - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    return (None if gap <= TOLERANCE * scale else f"values differ by up to {gap:.2g}"), None


def _first_line(exc: Exception) -> str:
    """The first sentence of an error (skl2onnx appends advice to file an issue)."""
    text = str(exc).strip()
    first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _read_cache(folder: Path | None, run_id: str | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("run_id") != run_id:
        return None
    if not meta.get("ok"):
        # A newer skl2onnx or ONNX Runtime may convert what an older one could not.
        return meta if meta.get("toolchain") == _toolchain() else None
    if meta.get("dtype") not in _DTYPES:
        return None
    meta["model"] = _graph(folder, meta)
    return meta if meta["model"] is not None else None


def _graph(folder: Path, meta: dict[str, Any]) -> bytes | None:
    """The cached graph's bytes, if they are the ones recorded in ``meta``."""
    try:
        model = (folder / "model.onnx").read_bytes()
    except OSError:  # replaced by another process since meta.json was read
        return None
    if cache.digest(model) != meta.get("model_sha256"):
        log.warning("%s is not the graph flowship wrote (SHA-256 differs); not used.", folder)
        return None
    return model


def _toolchain() -> str:
    from importlib.metadata import version

    return f"skl2onnx {version('skl2onnx')}, onnxruntime {version('onnxruntime')}"


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
        entry = {"run_id": run_id, **meta, "toolchain": _toolchain()}
        if model is not None:
            entry["model_sha256"] = cache.digest(model)
        (staging / "meta.json").write_text(json.dumps(entry))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except OSError as exc:  # a concurrent writer won; its entry is equivalent
        log.debug("ONNX cache write for %s lost a race: %s", folder, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------ fast reload
#
# A full load costs seconds before the first row: reading the MLmodel file imports
# MLflow, and loading the scikit-learn estimator imports skops and all of scikit-learn.
# A Predictor whose backend is ONNX (alone, or with a compiled forest or linear model
# for large batches or every batch) needs neither once it is built. So once a load has
# chosen such a backend, what that load learned is kept next to the cached graph: the
# signature's columns, the parity sample, the native model's outputs on it, the forest's
# arrays and the few facts the Predictor takes from the estimator. The next load of that
# version and output re-runs the parity checks against those outputs and skips MLflow
# and the estimator.
# Any doubt (missing or stale file, failed check) means the full load.


def _fast_path(folder: Path, output: Output) -> Path:
    return folder / f"fast-{output}.npz"


# Compiled backends a recorded load may use for large batches, by name.
COMPILED = {"forest": Forest, "linear": Linear}


def _parts(backend: Any) -> tuple[OnnxBackend | None, Any]:
    """(ONNX backend, compiled large-batch backend or None) of a recordable backend."""
    if isinstance(backend, OnnxBackend):
        return backend, None
    if (
        isinstance(backend, BySize)
        and isinstance(backend.small, OnnxBackend)
        and isinstance(backend.large, tuple(COMPILED.values()))
    ):
        return backend.small, backend.large
    return None, None


def save_fast(
    backend: Any, resolved: ResolvedRef, run_id: str | None, output: Output, **facts: Any
) -> None:
    """Record what a full load learned (``facts``: columns, order, missing_ok, classes,
    predict_fn), for an ONNX backend (possibly with a compiled one for large batches) that
    came with its parity evidence; other backends are not recorded."""
    onnx, large = _parts(backend)
    folder = cache_dir("onnx", resolved)
    evidence = getattr(onnx, "evidence", None)
    classes = facts.pop("classes")
    if folder is None or evidence is None or not folder.is_dir():
        return
    matrix, expected, classifier = evidence
    arrays = {"matrix": matrix}
    if classifier:
        arrays.update(labels=expected[0], proba=expected[1], label_classes=expected[2])
    else:
        arrays["values"] = expected
    if classes is not None:
        arrays["classes"] = np.asarray(classes)
    if large is not None:
        arrays.update({f"large_{k}": v for k, v in large.arrays.items()})
    if any(a.dtype == object for a in arrays.values()):
        return  # np.load without pickles cannot read these back; keep the full load
    facts["columns"] = [c.to_dict() for c in facts["columns"]]
    meta = {"run_id": run_id, "toolchain": _toolchain(), "classifier": classifier, **facts}
    meta["dtype"] = next(k for k, v in _DTYPES.items() if v is onnx.dtype)
    meta["argmax"] = onnx._classes is not None
    meta["large"] = large.name if large is not None else None
    meta["large_batch_rows"] = backend.threshold if large is not None else None
    out = io.BytesIO()
    np.savez(out, meta=np.array(json.dumps(meta)), **arrays)
    try:
        cache.write_checked(_fast_path(folder, output), out.getvalue())
    except OSError as exc:  # a read-only cache only costs the next load time
        log.debug("Could not record the fast reload in %s: %s", folder, exc)


def load_fast(
    resolved: ResolvedRef, run_id: str, output: Output, *, with_large: bool
) -> tuple[Any, dict[str, Any], str] | None:
    """(backend, facts, reason) from a recorded load, if it still holds; else None.
    ``with_large`` False gives the ONNX backend alone even where a compiled large-batch
    backend was recorded."""
    folder = cache_dir("onnx", resolved)
    if folder is None:
        return None
    try:
        record = cache.read_checked(_fast_path(folder, output))
        if record is None:
            return None
        with np.load(io.BytesIO(record), allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta["run_id"] != run_id or meta["toolchain"] != _toolchain():
            return None
        dtype = _DTYPES[meta["dtype"]]
        graph = _graph(folder, json.loads((folder / "meta.json").read_text()))
        if graph is None:
            return None
        session = _session(graph)
        classifier = bool(meta["classifier"])
        if classifier:
            expected: Any = (arrays["labels"], arrays["proba"], arrays["label_classes"])
        else:
            expected = arrays["values"]
        problem, rule = _parity(session, arrays["matrix"].astype(dtype), expected, classifier)
        if problem is not None or (rule is not None) != meta["argmax"]:
            log.warning("The recorded ONNX load in %s does not hold: %s", folder, problem)
            return None
        backend: Any = OnnxBackend(session, dtype, output=output, classes=rule)
        reason = (
            f"onnx: cached conversion ({meta['dtype']}) matches the native model's recorded "
            f"outputs within {TOLERANCE:g} on {len(arrays['matrix'])} rows (estimator not loaded)"
        )
        if with_large and meta["large"] is not None:
            parts = {k[len("large_") :]: v for k, v in arrays.items() if k.startswith("large_")}
            large = COMPILED[meta["large"]](parts, output=output)
            if not _compiled_holds(large, arrays["matrix"], expected, classifier, output):
                log.warning("The recorded %s backend in %s does not hold", large.name, folder)
                return None
            threshold = meta["large_batch_rows"]
            backend = BySize(backend, large, threshold=threshold)
            if threshold <= 1:
                reason = f"{large.name}: compiled, recorded faster than ONNX Runtime; {reason}"
            else:
                reason += f"; batches of {threshold}+ rows use the {large.name} backend"
    except Exception as exc:  # missing, partial or foreign file: the full load decides
        log.debug("No fast reload from %s: %s", folder, exc)
        return None
    facts = {k: meta[k] for k in ("order", "missing_ok", "predict_fn")}
    facts["columns"] = [InputColumn(**c) for c in meta["columns"]]
    facts["classes"] = list(arrays["classes"]) if "classes" in arrays else None
    return backend, facts, reason


def _compiled_holds(
    compiled: Any, matrix: np.ndarray, expected: Any, classifier: bool, output: Output
) -> bool:
    """The compiled backend gives the recorded native outputs (it did when recorded)."""
    if not classifier:
        want = expected
    else:
        want = expected[0] if output == "predict" else shape_proba(expected[1])
    got = compiled(matrix.astype(compiled.dtype))
    if got.shape != want.shape:
        return False
    if got.dtype.kind == "f":
        return bool(np.allclose(got, want, rtol=0, atol=1e-12, equal_nan=True))
    return bool((got == want).all())
