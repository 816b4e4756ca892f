"""The backends a Predictor can run: the native scikit-learn estimator and MLflow pyfunc.
(ONNX Runtime lives in ``_onnx.py``.)

Each backend is a callable taking either a 2-D NumPy matrix (``wants_frame`` False) or
a pandas DataFrame, returning the requested output as a NumPy array: labels/values of
shape (n,), the positive-class probability (n,) for a binary classifier, or (n, k)
class probabilities.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import numpy as np

from flowship.errors import UsageError

log = logging.getLogger(__name__)

Output = Literal["predict", "proba"]


def _silence_feature_name_warning() -> None:
    # The Predictor checks column names itself and hands the estimator its columns in the
    # fitted order as a matrix, so scikit-learn's per-call warning that the matrix has no
    # feature names is noise. A module-level filter (unlike catch_warnings) is thread-safe.
    warnings.filterwarnings(
        "ignore", message="X does not have valid feature names", category=UserWarning
    )


def is_classifier(estimator: Any) -> bool:
    return hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")


def fitted_order(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else None


def shape_proba(proba: np.ndarray) -> np.ndarray:
    """Binary: the positive class's column; otherwise every class."""
    proba = np.asarray(proba)
    return proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba


def no_proba(what: str) -> UsageError:
    return UsageError(
        f"output='proba' needs a classifier with predict_proba, and {what}.",
        "Use output='predict' for this model.",
    )


class NativeBackend:
    """The scikit-learn estimator called directly (no pandas on the matrix path)."""

    name = "native"
    dtype = np.float64
    contiguous = False  # scikit-learn takes column-major matrices as they are

    def __init__(
        self, estimator: Any, *, output: Output, wants_frame: bool, method: str | None = None
    ) -> None:
        self.estimator = estimator
        self.wants_frame = wants_frame
        if method is not None:  # the model's own pyfunc_predict_fn, output as MLflow gives it
            self._call = getattr(estimator, method)
        elif output == "proba":
            if not is_classifier(estimator):
                raise no_proba(f"{type(estimator).__name__} is not one")
            self._call = self._proba
        else:
            self._call = estimator.predict
        if not wants_frame and fitted_order(estimator) is not None:
            _silence_feature_name_warning()

    def _proba(self, data: Any) -> np.ndarray:
        return shape_proba(self.estimator.predict_proba(data))

    def __call__(self, data: Any) -> np.ndarray:
        return np.asarray(self._call(data))


class PyfuncBackend:
    """``mlflow.pyfunc`` semantics: a DataFrame in, whatever the model returns, as NumPy."""

    name = "pyfunc"
    wants_frame = True

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, data: Any) -> np.ndarray:
        result = self.model.predict(data)
        if hasattr(result, "to_numpy"):  # a DataFrame or Series
            result = result.to_numpy()
        result = np.asarray(result)
        if result.ndim == 2 and result.shape[1] == 1:
            result = result[:, 0]
        return result


class BySize:
    """ONNX for small inputs, an equally faithful backend measured faster (the compiled
    forest or linear model, or the native estimator) for batches of ``threshold`` rows or
    more. With a threshold of 1 the other backend answers every batch, and ONNX stays
    only as the checked reference of the recorded fast reload (``_onnx.save_fast``).
    Named after the backend that answers small batches; takes the matrix the large one
    wants."""

    wants_frame = False

    def __init__(self, small: Any, large: Any, *, threshold: int) -> None:
        self.small = small
        self.large = large
        self.threshold = threshold
        self.name = large.name if threshold <= 1 else small.name
        self.dtype = large.dtype
        self.contiguous = large.contiguous
        self._small_dtype = small.dtype

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        if len(matrix) >= self.threshold:
            return self.large(matrix)
        return self.small(np.ascontiguousarray(matrix, dtype=self._small_dtype))
