"""Choosing a Predictor's backend at load, and the probes behind the choice.

Order of preference: ONNX Runtime when the model converts and matches the native
estimator on the parity sample (``_onnx.py``); the scikit-learn estimator on a NumPy
matrix, when that gives what it gives on a DataFrame; the estimator on a DataFrame;
MLflow pyfunc. Every function returns the backend with the reason it was chosen.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from flowship.errors import InvalidInput, UsageError
from flowship.predict import _onnx
from flowship.predict._forest import SUPPORTED as FOREST_KINDS
from flowship.predict._forest import Forest, compile_forest, kernel
from flowship.predict._linear import Linear, compile_linear
from flowship.predict.backends import (
    BySize,
    NativeBackend,
    Output,
    PyfuncBackend,
    is_classifier,
    no_proba,
)
from flowship.predict.refs import ResolvedRef
from flowship.predict.sample import parity_sample
from flowship.predict.signature import NUMERIC_TYPES, InputColumn, InputSchema

log = logging.getLogger(__name__)

LARGE_BATCH = 2048
BATCH_PROBE_ROWS = 4096
SMALL_PROBE_ROWS = 8  # a served micro-batch


def load_sklearn(path: Path, meta: Any) -> tuple[Any, str | None]:
    """The fitted estimator when the model has the sklearn flavor, else why not."""
    if "sklearn" not in meta.flavors:
        flavors = ", ".join(sorted(f for f in meta.flavors if f != "python_function"))
        return None, f"flavor {flavors or 'python_function'} has no native backend"
    try:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(path)), None
    except Exception as exc:
        log.info("Cannot load the scikit-learn flavor of %s natively: %s", path, exc)
        return None, f"the scikit-learn flavor failed to load ({type(exc).__name__})"


def pyfunc_backend(path: Path, output: Output, why: str | None) -> tuple[Any, str]:
    if output == "proba":
        raise no_proba(why or "this model has no scikit-learn flavor")
    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(str(path))
    except Exception as exc:
        raise InvalidInput(
            f"Cannot load the model at {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
            "Check that the model's dependencies are installed (mlflow models "
            "prepare-env), or re-log it.",
        ) from exc
    return PyfuncBackend(model), f"pyfunc: {why}"


def unchecked_backend(
    path: Path, estimator: Any, output: Output, why: str | None
) -> tuple[Any, str]:
    if estimator is not None and output == "proba":
        return (
            NativeBackend(estimator, output=output, wants_frame=True),
            "native on a DataFrame: the model has no signature, so input is not checked",
        )
    backend, _ = pyfunc_backend(path, output, why)
    return backend, "pyfunc: the model has no signature, so input is not checked"


# What MLflow's sklearn pyfunc may call instead of predict, and the output column prefix.
CUSTOM_PREDICT_FNS = {"predict_proba": "probability", "predict_log_proba": "log_probability"}


def predict_fn_of(meta: Any) -> str:
    """The method MLflow's pyfunc calls for this model (``pyfunc_predict_fn`` at logging)."""
    return str(meta.flavors.get("python_function", {}).get("predict_fn") or "predict")


def custom_predict_backend(estimator: Any, predict_fn: str) -> tuple[Any, str]:
    """output='predict' for a model logged with pyfunc_predict_fn='predict_proba' (or
    'predict_log_proba'): MLflow answers with every class's column, and so do we."""
    return (
        NativeBackend(estimator, output="predict", wants_frame=True, method=predict_fn),
        f"native on a DataFrame: the model was logged with pyfunc_predict_fn={predict_fn!r}, "
        "which output='predict' follows as MLflow does; ONNX not tried",
    )


def estimator_backend(estimator: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The backend for a scikit-learn estimator, and why; a forest left uncompiled
    because the installed kernel is missing or refused says so in the reason."""
    backend, reason = _estimator_backend(estimator, *args, **kwargs)
    if type(estimator).__name__ in FOREST_KINDS and "forest" not in reason:
        walk = kernel()
        if isinstance(walk, str):
            reason += f"; the forest is not compiled: {walk}"
    return backend, reason


def _estimator_backend(
    estimator: Any,
    schema: InputSchema,
    meta: Any,
    path: Path,
    resolved: ResolvedRef,
    output: Output,
    run_id: str | None,
    *,
    prefer: str,
) -> tuple[Any, str]:
    if output == "proba" and not is_classifier(estimator):
        raise no_proba(f"{type(estimator).__name__} is not one")
    if not schema.numeric:
        if prefer == "onnx":
            raise UsageError(
                "backend='onnx' needs a signature whose columns are all numeric.",
                "Use backend='auto' or backend='native'.",
            )
        return (
            NativeBackend(estimator, output=output, wants_frame=True),
            "native on a DataFrame: the signature has non-numeric columns",
        )
    matrix, frame = _usable_sample(estimator, schema, *parity_sample(schema, meta, path))
    if matrix is None:
        if prefer == "onnx":
            raise UsageError(
                "backend='onnx' cannot be verified: the model fails on its input example.",
                "Use backend='auto'.",
            )
        return (
            NativeBackend(estimator, output=output, wants_frame=True),
            "native on a DataFrame: no sample the model accepts to verify ONNX or matrix input",
        )
    why_not_onnx = "ONNX not requested (backend='native')"
    if prefer != "native":
        onnx, why_not_onnx = _onnx.try_backend(
            estimator, schema, matrix, frame, resolved, output, run_id
        )
        if onnx is not None and prefer == "onnx":
            return onnx, why_not_onnx
        if onnx is not None:
            large = _large_batches(estimator, output, matrix, frame, path)
            if large is None:
                return onnx, why_not_onnx
            return _by_batch_size(onnx, large, matrix, why_not_onnx)
        if prefer == "onnx":
            raise UsageError(
                f"backend='onnx' cannot serve this model: {why_not_onnx}.",
                "Use backend='auto' to fall back to the native model.",
            )
    if prefer == "auto":
        compiled = _faithful_compiled(estimator, output, matrix, frame)
        if compiled is not None:
            rows = len(matrix)
            return (
                compiled,
                f"{compiled.name}: compiled, equals the estimator on {rows} rows; {why_not_onnx}",
            )
    native = _native_on_matrix(estimator, output, matrix, frame, path)
    if native is None:
        reference = NativeBackend(estimator, output=output, wants_frame=True)
        return reference, f"native on a DataFrame: the estimator needs column names; {why_not_onnx}"
    return native, f"native on NumPy: {why_not_onnx}"


def _large_batches(
    estimator: Any, output: Output, matrix: np.ndarray, frame: Any, path: Path
) -> Any:
    """What scores large batches beside ONNX: a compiled form of the estimator, else the
    estimator on a matrix, whichever reproduces the estimator (None if neither does)."""
    compiled = _faithful_compiled(estimator, output, matrix, frame)
    return compiled or _native_on_matrix(estimator, output, matrix, frame, path)


def _faithful_compiled(
    estimator: Any, output: Output, matrix: np.ndarray, frame: Any
) -> Forest | Linear | None:
    """The estimator compiled to flat arrays (``_forest.py``, ``_linear.py``), if it is
    a kind that compiles and gives exactly the estimator's outputs on the sample."""
    for compile_to in (compile_forest, compile_linear):
        compiled, why_not = compile_to(estimator, output)
        if compiled is not None:
            break
        log.debug("Not compiled: %s", why_not)
    else:
        return None
    reference = NativeBackend(estimator, output=output, wants_frame=True)
    if not _same(compiled(matrix), reference(frame)):
        log.warning(
            "The compiled %s differs from %s; using the estimator.",
            compiled.name,
            type(estimator).__name__,
        )
        return None
    return compiled


def _native_on_matrix(
    estimator: Any, output: Output, matrix: np.ndarray, frame: Any, path: Path
) -> NativeBackend | None:
    """The estimator fed a NumPy matrix, if that gives what it gives on a DataFrame."""
    native = NativeBackend(estimator, output=output, wants_frame=False)
    reference = NativeBackend(estimator, output=output, wants_frame=True)
    try:
        # Column-major, as large inputs reach it (see InputSchema.to_matrix).
        same = _same(native(np.asfortranarray(matrix)), reference(frame))
    except Exception as exc:  # e.g. a ColumnTransformer selecting columns by name
        log.info("Native matrix input failed for %s: %s", path, exc)
        same = False
    return native if same else None


def _by_batch_size(
    onnx: Any, native: Forest | Linear | NativeBackend, matrix: np.ndarray, reason: str
) -> tuple[Any, str]:
    """ONNX Runtime wins on small inputs against the estimator (no Python overhead per
    call), but on large batches the compiled forest or the native estimator can be
    faster (ONNX Runtime's tree ensembles are). Both are verified; time them once on a
    tiled sample and keep ONNX for large batches unless the other is clearly faster. A
    compiled linear model is one NumPy product, faster than ONNX Runtime's call at any
    size (5 against 28 us for one row): a compiled backend that also wins clearly on a
    served micro-batch answers every batch."""
    big = np.resize(matrix, (BATCH_PROBE_ROWS, matrix.shape[1]))
    t_onnx = _best_time(onnx, big.astype(onnx.dtype))
    t_native = _best_time(native, big.astype(native.dtype))
    # A clear win is 20% and a millisecond per probe; below that the difference is this
    # machine's noise. The estimator itself must win clearly to be worth a second code
    # path; a compiled backend, which gives exactly the estimator's answers where ONNX
    # comes within 1e-5, is kept unless it clearly loses.
    compiled = not isinstance(native, NativeBackend)
    if compiled:
        keep = not (t_onnx < 0.8 * t_native and t_native - t_onnx >= 1e-3)
    else:
        keep = t_native < 0.8 * t_onnx and t_onnx - t_native >= 1e-3
    if not keep:
        return onnx, reason
    large = f"{t_native * 1e3:.1f} ms against {t_onnx * 1e3:.1f} ms per {BATCH_PROBE_ROWS} rows"
    if compiled:
        small = np.resize(matrix, (SMALL_PROBE_ROWS, matrix.shape[1]))
        s_onnx = _best_time(onnx, small.astype(onnx.dtype), calls=200)
        s_native = _best_time(native, small.astype(native.dtype), calls=200)
        if s_native < 0.8 * s_onnx:  # per call: microseconds, a clear win is 20%
            return BySize(onnx, native, threshold=1), (
                f"{native.name}: compiled, the estimator's exact answers, faster than ONNX "
                f"Runtime on every batch ({s_native * 1e6:.0f} against {s_onnx * 1e6:.0f} "
                f"us per {SMALL_PROBE_ROWS} rows, {large}); {reason}"
            )
    split = BySize(onnx, native, threshold=LARGE_BATCH)
    rule = f"batches of {LARGE_BATCH}+ rows use the {native.name} backend ({large})"
    return split, f"{reason}; {rule}"


def _best_time(backend: Any, matrix: np.ndarray, calls: int = 1) -> float:
    """The best of three timings of ``calls`` calls, per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            backend(matrix)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def takes_nan(estimator: Any, columns: list[InputColumn], meta: Any, path: Path) -> bool:
    """Whether the model accepts NaN in the signature's optional numeric columns (probed
    on a few rows); True when there are none, or no estimator to ask."""
    optional = [c.name for c in columns if not c.required and c.type in NUMERIC_TYPES]
    if estimator is None or not optional or not all(c.type in NUMERIC_TYPES for c in columns):
        return True
    schema = InputSchema(columns)
    sample, _ = parity_sample(schema, meta, path)
    frame = schema.to_frame({k: v[:5] for k, v in sample.items()})
    frame[optional] = np.nan
    try:
        estimator.predict(frame)
    except Exception as exc:
        log.info("The model does not take NaN in its optional columns: %s", exc)
        return False
    return True


def _usable_sample(
    estimator: Any, schema: InputSchema, sample: dict[str, np.ndarray], n_example: int
) -> tuple[np.ndarray | None, Any]:
    """The parity sample as (matrix, frame); only the input example's rows when the model
    rejects the synthetic ones (a log transform of a negative number), else (None, None)."""
    if schema.missing_ok and schema.optional:  # make ONNX prove it handles NaN as well
        names = [c.name for c in schema.optional]
        sample = {k: np.concatenate([v, v[:16]]) for k, v in sample.items()}
        for name in names:
            sample[name][-16:] = np.nan
    frame = schema.to_frame(sample)
    for rows in (len(frame), n_example):
        if rows == 0:
            break
        part = frame.iloc[:rows]
        try:
            estimator.predict(part)
            if is_classifier(estimator):
                estimator.predict_proba(part)
        except Exception as exc:
            log.info("The model rejects %d parity rows: %s", rows, exc)
            continue
        return schema.to_matrix({c: part[c].to_numpy() for c in part.columns}), part
    return None, None


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=0, atol=1e-12, equal_nan=True))
    return bool((a == b).all())
