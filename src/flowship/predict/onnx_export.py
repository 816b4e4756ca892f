"""An ONNX graph of a model version for embedding elsewhere (C++, Java, JavaScript).

The same conversion and the same parity bar as the Predictor's ONNX backend
(``_onnx.py``): a graph is handed out only if, on the parity sample (the version's input
example, extra rows such as its attached baseline, and generated rows), its
probabilities or values come within 1e-5 of the native model's and its labels equal
them. Otherwise ``CheckFailed`` says by how much it missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowship.errors import CheckFailed, UsageError
from flowship.predict import _onnx
from flowship.predict.artifacts import local_model_dir, read_mlmodel
from flowship.predict.backends import fitted_order, is_classifier
from flowship.predict.choose import _usable_sample, load_sklearn
from flowship.predict.refs import ResolvedRef, resolve_ref
from flowship.predict.sample import parity_sample
from flowship.predict.signature import InputColumn, InputSchema, columns_from_signature

# The oldest opset skl2onnx still targets for common models; the newest is onnx's own.
MIN_OPSET = 9
# Extra rows (a baseline) beyond this are not needed to test parity and cost time.
MAX_EXTRA_ROWS = 5000


@dataclass(frozen=True)
class OnnxGraph:
    """A converted graph and the evidence that it reproduces the native model."""

    model: bytes
    resolved: ResolvedRef
    run_id: str | None
    dtype: str
    """Input element type: ``float64`` (tensor(double)) or ``float32`` (tensor(float))."""
    columns: list[InputColumn]
    """The signature's columns."""
    order: list[str]
    """The input matrix's column order (the order the estimator was fitted with)."""
    classes: list[Any] | None
    label_rule: str
    """``argmax``: labels are ``classes[argmax(probabilities)]``; ``label``: the graph's
    own label output (they agree on the parity sample)."""
    rows: int
    extra_rows: int
    max_gap: float


def convert_to_onnx(
    ref: str,
    *,
    opset: int | None = None,
    float32: bool = False,
    extra: Any = None,
) -> OnnxGraph:
    """Convert ``ref`` to ONNX and check it against the native model.

    ``float32``: insist on a float32 graph (runtimes without double kernels, mobile);
    default: the Predictor's order, double precision first except for tree models.
    ``extra``: more rows to check parity on (a mapping or DataFrame, e.g. the baseline).
    """
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise UsageError(
            f"Opset {opset} is out of range.",
            f"Use an opset from {MIN_OPSET} to {newest} (this onnx package's newest).",
        )
    resolved = resolve_ref(ref)
    label = _label(resolved)
    path = local_model_dir(resolved)
    meta = read_mlmodel(path)
    columns = columns_from_signature(meta.signature)
    estimator, why_not = load_sklearn(path, meta)
    if estimator is None:
        raise UsageError(
            f"{label} cannot be exported to ONNX: {why_not}.",
            "ONNX export covers scikit-learn models; ship this one as a container "
            "(flowship build-image) instead.",
        )
    if columns is None:
        raise UsageError(
            f"{label} cannot be exported to ONNX: it has no column signature.",
            "Re-log it with a signature (mlflow.models.infer_signature).",
        )
    order = _fitted_order(estimator, columns)
    schema = InputSchema(columns, order=order)
    if not schema.numeric:
        raise UsageError(
            f"{label} cannot be exported to ONNX: its signature has non-numeric columns.",
            "ONNX export takes one numeric matrix; encode categories inside the pipeline "
            "only when they arrive as numbers, or ship a container (flowship build-image).",
        )
    sample, n_example = parity_sample(schema, meta, path)
    n_extra = 0
    if extra is not None:
        added = _extra_rows(schema, extra, label)
        n_extra = len(next(iter(added.values())))
        sample = {k: np.concatenate([added[k], v]) for k, v in sample.items()}
        n_example += n_extra
    matrix, frame = _usable_sample(estimator, schema, sample, n_example)
    if matrix is None:
        raise CheckFailed(
            f"{label} fails on its own input example and generated rows, so ONNX parity "
            "cannot be checked. Nothing was written.",
            "Log the model with an input example it accepts.",
        )
    classifier = is_classifier(estimator)
    expected = _onnx._reference(estimator, frame, classifier)
    precisions = ("float32",) if float32 else None
    candidates = _onnx._conversions(estimator, matrix.shape[1], precisions=precisions, opset=opset)
    found, reason = _onnx._first_faithful(candidates, matrix, expected, classifier)
    if found is None:
        raise CheckFailed(
            f"{label} does not convert to a faithful ONNX graph on {len(matrix)} rows: "
            f"{reason} (tolerance {_onnx.TOLERANCE:g}). Nothing was written.",
            "Serve it natively (flowship serve / build-image)"
            + ("" if float32 else ", or try --float32")
            + ("; or try another --opset." if opset else "."),
        )
    dtype_name, model_bytes, session, classes_rule = found
    gap = _gap(session, matrix.astype(_onnx._DTYPES[dtype_name]), expected, classifier)
    return OnnxGraph(
        model=model_bytes,
        resolved=resolved,
        run_id=resolved.run_id or getattr(meta, "run_id", None),
        dtype=dtype_name,
        columns=list(columns),
        order=list(schema.order),
        classes=[_plain(c) for c in estimator.classes_] if classifier else None,
        label_rule="argmax" if classes_rule is not None or not classifier else "label",
        rows=len(matrix),
        extra_rows=n_extra,
        max_gap=gap,
    )


def _fitted_order(estimator: Any, columns: list[InputColumn]) -> list[str] | None:
    order = fitted_order(estimator)
    if order is not None and sorted(order) == sorted(c.name for c in columns):
        return order
    return None


def _extra_rows(schema: InputSchema, extra: Any, label: str) -> dict[str, np.ndarray]:
    """The signature's columns of ``extra`` (at most MAX_EXTRA_ROWS rows), checked."""
    import pandas as pd

    frame = extra if isinstance(extra, pd.DataFrame) else pd.DataFrame(dict(extra))
    frame = frame.head(MAX_EXTRA_ROWS)
    wanted = [c.name for c in schema.columns]
    missing = [c for c in wanted if c not in frame.columns]
    if missing or frame.empty:
        raise UsageError(
            f"The extra parity rows for {label} lack column(s) {', '.join(missing)}."
            if missing
            else f"The extra parity rows for {label} are empty.",
            "Attach a baseline with the model's input columns (flowship monitor attach-baseline).",
        )
    frame = frame[wanted].dropna()  # a baseline may hold gaps the model never sees
    _, checked = schema.check({c: frame[c].to_numpy() for c in wanted})
    return {k: np.asarray(v, dtype=np.float64) for k, v in checked.items()}


def _gap(session: Any, matrix: np.ndarray, expected: Any, classifier: bool) -> float:
    """The largest difference between the graph's outputs and the native model's."""
    got = session.run(None, {session.get_inputs()[0].name: matrix})
    if classifier:
        return float(np.max(np.abs(got[1] - expected[1])))
    return float(np.max(np.abs(np.ravel(got[0]).astype(np.float64) - expected)))


def _label(resolved: ResolvedRef) -> str:
    if resolved.model_name:
        return f"Model {resolved.model_name!r} version {resolved.model_version}"
    return f"Model {resolved.uri!r}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
