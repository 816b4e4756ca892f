"""The Predictor: one loaded model version, its input checks and its fastest faithful backend.

The backend is chosen at load (``choose.py``); the choice and its reason are logged at
INFO and kept in ``backend_reason``. ``predict`` is the input check plus one call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from flowship.errors import FlowshipError, InvalidInput, ScoringFailed, UsageError
from flowship.predict import _onnx
from flowship.predict.artifacts import local_model_dir, read_mlmodel
from flowship.predict.backends import Output, fitted_order, is_classifier
from flowship.predict.choose import (
    CUSTOM_PREDICT_FNS,
    custom_predict_backend,
    estimator_backend,
    load_sklearn,
    predict_fn_of,
    pyfunc_backend,
    takes_nan,
    unchecked_backend,
)
from flowship.predict.refs import ResolvedRef, resolve_ref
from flowship.predict.signature import Extra, InputColumn, InputSchema, columns_from_signature

log = logging.getLogger(__name__)

Backend = Literal["onnx", "forest", "linear", "native", "pyfunc"]


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
        # The columns of the matrix :meth:`score` returns: a numeric signature whose
        # every column is required (no missing value is filled in on the way).
        self.matrix_columns: list[str] | None = (
            list(schema.order) if schema is not None and schema.numeric and schema.all_required
            else None
        )  # fmt: skip

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
        if backend in ("auto", "onnx") and resolved.run_id is not None:
            fast = _onnx.load_fast(resolved, resolved.run_id, output, with_large=backend == "auto")
            if fast is not None:
                chosen, facts, reason = fast
                schema = InputSchema(
                    facts["columns"],
                    extra=extra,
                    order=facts["order"],
                    missing_ok=facts["missing_ok"],
                )
                return cls._built(
                    resolved,
                    output,
                    schema,
                    chosen,
                    reason,
                    facts["classes"],
                    facts["predict_fn"],
                    resolved.run_id,
                )
        path = local_model_dir(resolved)
        meta = read_mlmodel(path)
        run_id = resolved.run_id or getattr(meta, "run_id", None)
        columns = columns_from_signature(meta.signature)
        label = _label(resolved)
        predict_fn = predict_fn_of(meta)
        estimator, native_failure = load_sklearn(path, meta)
        if backend in ("onnx", "native") and (estimator is None or columns is None):
            why = native_failure or "it has no column signature"
            raise UsageError(
                f"backend={backend!r} cannot serve {label}: {why}.",
                "Use backend='auto' or backend='pyfunc'.",
            )
        if columns is None:
            schema = None
            log.warning("%s has no column signature: its input is passed through unchecked.", label)
            chosen, reason = unchecked_backend(path, estimator, output, native_failure)
        else:
            order = fitted_order(estimator) if estimator is not None else None
            if order is not None and sorted(order) != sorted(c.name for c in columns):
                order = None  # the matrix path needs the two to agree; frames do not
            missing_ok = takes_nan(estimator, columns, meta, path)
            schema = InputSchema(columns, extra=extra, order=order, missing_ok=missing_ok)
            if estimator is None or backend == "pyfunc":
                why = native_failure or "requested with backend='pyfunc'"
                chosen, reason = pyfunc_backend(path, output, why)
            elif output == "predict" and predict_fn != "predict":
                if predict_fn not in CUSTOM_PREDICT_FNS or backend == "onnx":
                    why = f"the model was logged with pyfunc_predict_fn={predict_fn!r}"
                    chosen, reason = pyfunc_backend(path, output, why)
                else:
                    chosen, reason = custom_predict_backend(estimator, predict_fn)
            else:
                chosen, reason = estimator_backend(
                    estimator, schema, meta, path, resolved, output, run_id, prefer=backend
                )
        classifier = estimator is not None and is_classifier(estimator)
        classes = list(estimator.classes_) if classifier else None
        if backend == "auto" and schema is not None and resolved.run_id is not None:
            _onnx.save_fast(
                chosen,
                resolved,
                resolved.run_id,
                output,
                columns=schema.columns,
                order=schema.order,
                missing_ok=schema.missing_ok,
                classes=classes,
                predict_fn=predict_fn,
            )
        return cls._built(resolved, output, schema, chosen, reason, classes, predict_fn, run_id)

    @classmethod
    def _built(
        cls,
        resolved: ResolvedRef,
        output: Output,
        schema: InputSchema | None,
        chosen: Any,
        reason: str,
        classes: list[Any] | None,
        predict_fn: str,
        run_id: str | None,
    ) -> Predictor:
        predictor = cls(
            resolved=resolved,
            output=output,
            schema=schema,
            backend=chosen,
            reason=reason,
            output_columns=_output_columns(output, classes, predict_fn),
            classes=classes,
            run_id=run_id,
        )
        log.info("Loaded %s: backend %s (%s).", _label(resolved), predictor.backend, reason)
        return predictor

    # ------------------------------------------------------------- predicting

    def predict(self, data: Any) -> np.ndarray:
        """Check ``data`` against the signature, then score it: shape (n,) for labels,
        values and binary probabilities, (n, k) for multi-class probabilities."""
        return self.score(data)[0]

    def score(self, data: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict`, and the rows it scored as the float64 matrix the model took,
        columns in ``matrix_columns`` order (None when the model took another form: a
        frame, float32, a signature with optional columns). The prediction log keeps
        these rows instead of copying each request's values again."""
        prepared = self._prepare(data)
        try:
            result = self._backend(prepared)
        except FlowshipError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ScoringFailed(
                f"{_label_of(self)} could not score this input: {first}",
                "Check the input values against the model's signature (describe()).",
                exc_type=type(exc).__name__,
            ) from exc
        if (
            self.matrix_columns is not None
            and type(prepared) is np.ndarray
            and prepared.dtype == np.float64
            and prepared.ndim == 2
        ):
            return result, prepared
        return result, None

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


def _output_columns(output: Output, classes: list[Any] | None, predict_fn: str) -> list[str]:
    if output == "predict":
        prefix = CUSTOM_PREDICT_FNS.get(predict_fn)
        if prefix is not None and classes is not None:
            return [f"{prefix}_{_plain(c)}" for c in classes]
        return ["prediction"]
    if classes is not None and len(classes) > 2:
        return [f"probability_{_plain(c)}" for c in classes]
    return ["probability"]


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
