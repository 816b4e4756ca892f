"""Linear models as one NumPy product: scikit-learn's own arithmetic, without its per-call
input validation or ONNX Runtime's probability graph.

For labels and values, scikit-learn's linear models compute ``X @ coef.T + intercept``
and a classifier then takes ``classes[score > 0]`` (two classes) or ``classes[argmax]``.
This backend runs the same product on the same float64 matrix, so it gives the same
answers; like every backend it is kept only when the parity sample agrees. ONNX Runtime
computes every class probability on the way to a label, which on 10 million rows costs
most of a second; the product costs a few milliseconds per million rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowship.predict.backends import Output

SUPPORTED = {
    "LogisticRegression",
    "RidgeClassifier",
    "SGDClassifier",
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "SGDRegressor",
}


class Linear:
    """``coef``/``intercept`` (and ``classes`` for a classifier) as arrays, called like the
    other backends on a float64 matrix."""

    name = "linear"
    wants_frame = False
    dtype = np.float64
    contiguous = False  # the product takes column-major matrices as they are

    def __init__(self, arrays: dict[str, np.ndarray], *, output: Output) -> None:
        self.arrays = arrays
        coef = arrays["coef"]
        self._coef_t = coef.T if coef.ndim == 2 else coef
        self._intercept = arrays["intercept"]
        self._classes = arrays["classes"] if len(arrays["classes"]) else None

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        scores = matrix @ self._coef_t + self._intercept
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if self._classes is None:
            return scores
        picked = (scores > 0).astype(np.intp) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self._classes.take(picked)


def compile_linear(estimator: Any, output: Output) -> tuple[Linear | None, str]:
    """The estimator as a Linear backend, or None and why it cannot be one."""
    kind = type(estimator).__name__
    if kind not in SUPPORTED:
        return None, f"{kind} is not one of the linear models compiled"
    if output != "predict":
        return None, "probabilities are left to ONNX Runtime or the estimator"
    classes = np.asarray(getattr(estimator, "classes_", []))
    if classes.dtype == object:
        return None, "class labels of mixed or object type are not compiled"
    arrays = {
        "coef": np.asarray(estimator.coef_, dtype=np.float64),
        "intercept": np.asarray(estimator.intercept_, dtype=np.float64),
        "classes": classes,
    }
    return Linear(arrays, output=output), "compiled"
