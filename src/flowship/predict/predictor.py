"""The Predictor: one loaded model version, its input checks and its fastest faithful backend.

Backend choice, at load: ONNX Runtime when the model converts and matches the native
estimator on a sample (see ``_onnx.py``), else the scikit-learn estimator called on a
NumPy matrix (or on a DataFrame when it needs column names), else MLflow pyfunc. The
choice and its reason are logged at INFO and kept in ``backend_reason``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flowship.errors import FlowshipError, InvalidInput, UsageError
from flowship.predict import _onnx
from flowship.predict.artifacts import local_model_dir, read_mlmodel
from flowship.predict.backends import (
    BySize,
    NativeBackend,
    Output,
    PyfuncBackend,
    fitted_order,
    is_classifier,
    no_proba,
)
from flowship.predict.refs import ResolvedRef, resolve_ref
from flowship.predict.sample import parity_sample
from flowship.predict.signature import (
    NUMERIC_TYPES,
    Extra,
    InputColumn,
    InputSchema,
    columns_from_signature,
)

log = logging.getLogger(__name__)

Backend = Literal["onnx", "native", "pyfunc"]
LARGE_BATCH = 2048
BATCH_PROBE_ROWS = 4096


class Predictor:
    """A loaded model version. Build one with :meth:`Predictor.load`."""

    def __init__(
        self,
        *,
        resolved: ResolvedRef,
        output: Output,
        schema: InputSchema | None,
        backend: Any,
        reason: str,
        output_columns: list[str],
        classes: list[Any] | None,
        run_id: str | None,
    ) -> None:
        self.ref = resolved.ref
        self.uri = resolved.uri
        self.model_name = resolved.model_name
        self.model_version = resolved.model_version
        self.run_id = run_id
        self.output: Output = output
        self.backend: Backend = backend.name
        self.backend_reason = reason
        self.input_columns: list[InputColumn] = list(schema.columns) if schema else []
        self.output_columns = output_columns
        self.classes = classes
        self._schema = schema
        self._backend = backend

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        ref: str,
        *,
        output: Output = "predict",
        extra: Extra = "ignore",
        backend: Literal["auto", "onnx", "native", "pyfunc"] = "auto",
    ) -> Predictor:
        """Load ``ref`` (``models:/N@alias``, ``models:/N/Stage``, ``models:/N/3``,
        ``models:/N/latest``, ``runs:/ID/PATH`` or a local model directory).

        ``output``: ``"predict"`` (labels or values) or ``"proba"`` (classifiers only).
        ``extra``: ``"ignore"`` columns the signature does not name, or ``"reject"`` them.
        ``backend``: ``"auto"`` picks the fastest faithful one; naming one insists on it
        (a ``UsageError`` says why when it cannot serve this model), e.g. ``"native"`` to
        skip the ONNX conversion or ``"pyfunc"`` for plain MLflow semantics.
        """
        if output not in ("predict", "proba"):
            raise UsageError(
                f"Unknown output mode {output!r}.", "Use output='predict' or output='proba'."
            )
        if extra not in ("ignore", "reject"):
            raise UsageError(
                f"Unknown extra-column policy {extra!r}.", "Use extra='ignore' or extra='reject'."
            )
        if backend not in ("auto", "onnx", "native", "pyfunc"):
            raise UsageError(
                f"Unknown backend {backend!r}.", "Use 'auto', 'onnx', 'native' or 'pyfunc'."
            )
        resolved = resolve_ref(ref)
        path = local_model_dir(resolved)
        meta = read_mlmodel(path)
        run_id = resolved.run_id or getattr(meta, "run_id", None)
        columns = columns_from_signature(meta.signature)
        label = _label(resolved)

        estimator, native_failure = _load_sklearn(path, meta)
        if backend in ("onnx", "native") and (estimator is None or columns is None):
            why = native_failure or "it has no column signature"
            raise UsageError(
                f"backend={backend!r} cannot serve {label}: {why}.",
                "Use backend='auto' or backend='pyfunc'.",
            )
        if columns is None:
            schema = None
            log.warning("%s has no column signature: its input is passed through unchecked.", label)
            chosen, reason = _unchecked_backend(path, estimator, output, native_failure)
        else:
            order = fitted_order(estimator) if estimator is not None else None
            if order is not None and sorted(order) != sorted(c.name for c in columns):
                order = None  # the matrix path needs the two to agree; frames do not
            missing_ok = _takes_nan(estimator, columns, meta, path)
            schema = InputSchema(columns, extra=extra, order=order, missing_ok=missing_ok)
            if estimator is None or backend == "pyfunc":
                why = native_failure or "requested with backend='pyfunc'"
                chosen, reason = _pyfunc_backend(path, output, why)
            else:
                chosen, reason = _estimator_backend(
                    estimator, schema, meta, path, resolved, output, run_id, prefer=backend
                )
        classifier = estimator is not None and is_classifier(estimator)
        classes = list(estimator.classes_) if classifier else None
        predictor = cls(
            resolved=resolved,
            output=output,
            schema=schema,
            backend=chosen,
            reason=reason,
            output_columns=_output_columns(output, classes),
            classes=classes,
            run_id=run_id,
        )
        log.info("Loaded %s: backend %s (%s).", label, predictor.backend, reason)
        return predictor

    # ------------------------------------------------------------- predicting

    def predict(self, data: Any) -> np.ndarray:
        """Check ``data`` against the signature, then score it: shape (n,) for labels,
        values and binary probabilities, (n, k) for multi-class probabilities."""
        prepared = self._prepare(data)
        try:
            return self._backend(prepared)
        except FlowshipError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(
                f"{_label_of(self)} could not score this input: {first}",
                "Check the input values against the model's signature (describe()).",
            ) from exc

    def validate(self, data: Any) -> None:
        """The checks :meth:`predict` makes, without predicting."""
        if self._schema is not None:
            self._schema.check(data)
        else:
            _unchecked_frame(data)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.model_name,
            "version": self.model_version,
            "run_id": self.run_id,
            "ref": self.ref,
            "uri": self.uri,
            "backend": self.backend,
            "reason": self.backend_reason,
            "output": self.output,
            "inputs": [c.to_dict() for c in self.input_columns],
            "outputs": list(self.output_columns),
            "classes": [_plain(c) for c in self.classes] if self.classes is not None else None,
        }

    def __repr__(self) -> str:
        return f"<Predictor {_label_of(self)} backend={self.backend} output={self.output}>"

    def _prepare(self, data: Any) -> Any:
        schema = self._schema
        if schema is None:
            return _unchecked_frame(data)
        if self._backend.wants_frame:
            return schema.to_frame(data)
        backend = self._backend
        return schema.to_matrix(data, backend.dtype, contiguous=backend.contiguous)


# ------------------------------------------------------------------ choosing


def _label(resolved: ResolvedRef) -> str:
    if resolved.model_name:
        return f"model {resolved.model_name!r} version {resolved.model_version}"
    return f"model {resolved.uri!r}"


def _label_of(p: Predictor) -> str:
    if p.model_name:
        return f"Model {p.model_name!r} version {p.model_version}"
    return f"Model {p.uri!r}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _output_columns(output: Output, classes: list[Any] | None) -> list[str]:
    if output == "predict":
        return ["prediction"]
    if classes is not None and len(classes) > 2:
        return [f"probability_{_plain(c)}" for c in classes]
    return ["probability"]


def _load_sklearn(path: Path, meta: Any) -> tuple[Any, str | None]:
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


def _pyfunc_backend(path: Path, output: Output, why: str | None) -> tuple[Any, str]:
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


def _unchecked_backend(
    path: Path, estimator: Any, output: Output, why: str | None
) -> tuple[Any, str]:
    if estimator is not None and output == "proba":
        return (
            NativeBackend(estimator, output=output, wants_frame=True),
            "native on a DataFrame: the model has no signature, so input is not checked",
        )
    backend, _ = _pyfunc_backend(path, output, why)
    return backend, "pyfunc: the model has no signature, so input is not checked"


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
            native = _native_on_matrix(estimator, output, matrix, frame, path)
            if native is None:
                return onnx, why_not_onnx
            return _by_batch_size(onnx, native, matrix, why_not_onnx)
        if prefer == "onnx":
            raise UsageError(
                f"backend='onnx' cannot serve this model: {why_not_onnx}.",
                "Use backend='auto' to fall back to the native model.",
            )
    native = _native_on_matrix(estimator, output, matrix, frame, path)
    if native is None:
        reference = NativeBackend(estimator, output=output, wants_frame=True)
        return reference, f"native on a DataFrame: the estimator needs column names; {why_not_onnx}"
    return native, f"native on NumPy: {why_not_onnx}"


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
    onnx: Any, native: NativeBackend, matrix: np.ndarray, reason: str
) -> tuple[Any, str]:
    """ONNX Runtime wins on small inputs (no Python overhead per call), but on large
    batches the native estimator can be faster (double-precision tree ensembles in ONNX
    Runtime are). Both are verified; time them once on a tiled sample and keep ONNX for
    large batches unless native is clearly faster."""
    big = np.resize(matrix, (BATCH_PROBE_ROWS, matrix.shape[1]))
    onnx_input = big.astype(onnx.dtype)
    t_onnx = _best_time(onnx, onnx_input)
    t_native = _best_time(native, big)
    # Only a clear win (20% and a millisecond per probe) is worth a second code path;
    # below that the difference is this machine's noise.
    if t_native >= 0.8 * t_onnx or t_onnx - t_native < 1e-3:
        return onnx, reason
    split = BySize(onnx, native, threshold=LARGE_BATCH)
    return split, (
        f"{reason}; batches of {LARGE_BATCH}+ rows use the native model (faster: "
        f"{t_native * 1e3:.1f} ms against {t_onnx * 1e3:.1f} ms per {BATCH_PROBE_ROWS} rows)"
    )


def _best_time(backend: Any, matrix: np.ndarray) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        backend(matrix)
        best = min(best, time.perf_counter() - start)
    return best


def _takes_nan(estimator: Any, columns: list[InputColumn], meta: Any, path: Path) -> bool:
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


def _unchecked_frame(data: Any):  # -> pandas.DataFrame
    """Input for a model without a column signature: any supported input as a DataFrame."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        values = dict(data)
        scalars = all(np.ndim(v) == 0 for v in values.values())
        try:
            frame = pd.DataFrame(values, index=[0] if scalars and values else None)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"Cannot read the input as a table: {str(exc)[:200]}", "Send one list per column."
            ) from exc
    elif type(data).__module__.startswith("pyarrow") and hasattr(data, "to_pandas"):
        frame = data.to_pandas()
    else:
        raise InvalidInput(
            f"Unsupported input of type {type(data).__name__}.",
            "Pass a pandas DataFrame, a pyarrow Table or RecordBatch, or a mapping of column "
            "name to a list or NumPy array of values.",
        )
    if len(frame) == 0:
        raise InvalidInput("Input has no rows.", "Send at least one row.")
    return frame
