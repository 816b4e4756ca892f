"""Compiled forests: scikit-learn's random forests and extra trees walked by a Numba kernel.

scikit-learn walks a tree with one branch per node, and on real inputs about half of
those branches are mispredicted: that is most of its 1.8 µs a row for 50 trees of depth
8. The kernel below walks 32 rows through a tree together without branching (children
are stored side by side, so the next node is ``left + (x > threshold)``), about 2.8x
faster on one core, and releases the GIL so that slices score on every core.

It reproduces scikit-learn exactly, not approximately:
- scikit-learn compares float32 inputs with float64 thresholds; for a float32 ``x``,
  ``x <= t`` equals ``x <= t32`` where ``t32`` is the largest float32 not above ``t``,
  so thresholds are stored that way and the inputs as float32;
- NaN takes the node's recorded missing-value direction;
- leaf values stay float64 and are summed tree by tree, in order, then divided by the
  number of trees, as scikit-learn does with ``n_jobs=None``.
Each Forest is still checked against the estimator on the parity sample before use.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from flowship.predict.backends import Output, is_classifier

log = logging.getLogger(__name__)

# Rows walked through a tree together: enough independent walks to hide the latency of
# each node's loads (measured best between 16 and 64).
BLOCK = 32
SUPPORTED = {
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
}
ARRAYS = ("roots", "depths", "nodes", "values", "classes")
# One 16-byte record per node, so a step of a walk touches one cache line (about 9%
# faster than an array per field, and than 13-byte records that straddle lines): the
# left child (the right one follows it), the feature, the threshold, and whether NaN
# goes right (an int32 for the padding's sake).
NODE = np.dtype(
    [("left", np.int32), ("feature", np.int32), ("threshold", np.float32), ("nan_right", np.int32)]
)


class Forest:
    """A forest as flat arrays, called like the other backends on a float32 row-major
    matrix. ``values`` holds each node's leaf output: class fractions (classifiers,
    shape (nodes, k)) or the predicted value (regressors, shape (nodes, 1))."""

    name = "forest"
    wants_frame = False
    dtype = np.float32
    contiguous = True

    def __init__(self, arrays: dict[str, np.ndarray], *, output: Output) -> None:
        self.arrays = arrays
        self._classes = arrays["classes"] if len(arrays["classes"]) else None
        self._walk_args = tuple(arrays[k] for k in ARRAYS[:-1])
        self.output = output

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        sums = np.zeros((len(matrix), self.arrays["values"].shape[1]), dtype=np.float64)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        _walk()(matrix, bool(np.isnan(matrix).any()), *self._walk_args, sums)
        sums /= len(self.arrays["roots"])
        if self._classes is None:
            return sums[:, 0]
        if self.output == "proba":
            return sums[:, 1] if sums.shape[1] == 2 else sums
        return self._classes.take(np.argmax(sums, axis=1))


def compile_forest(estimator: Any, output: Output) -> tuple[Forest | None, str]:
    """The estimator as a Forest, or None and why it cannot be one."""
    kind = type(estimator).__name__
    if kind not in SUPPORTED:
        return None, f"{kind} is not a random forest or extra-trees ensemble"
    if getattr(estimator, "n_outputs_", 1) != 1:
        return None, "multi-output forests are not compiled"
    classifier = is_classifier(estimator)
    trees = [tree.tree_ for tree in estimator.estimators_]
    n_classes = len(estimator.classes_) if classifier else 1
    nodes, values, roots, depths, offset = [], [], [], [], 0
    for tree in trees:
        order = _breadth_first(tree.children_left, tree.children_right)
        placed, leaf_values = _placed(tree, order, offset, n_classes, classifier)
        nodes.append(placed)
        values.append(leaf_values)
        roots.append(offset)
        depths.append(tree.max_depth)
        offset += len(order)
    if offset >= np.iinfo(np.int32).max:
        return None, "the forest has too many nodes"
    arrays = {"nodes": np.concatenate(nodes), "values": np.concatenate(values)}
    arrays["roots"] = np.asarray(roots, dtype=np.int32)
    arrays["depths"] = np.asarray(depths, dtype=np.int32)
    arrays["classes"] = np.asarray(estimator.classes_ if classifier else [])
    if arrays["classes"].dtype == object:
        return None, "class labels of mixed or object type are not compiled"
    return Forest(arrays, output=output), "compiled"


def _breadth_first(left: np.ndarray, right: np.ndarray) -> list[int]:
    """Node ids in breadth-first order: the two children of a node become neighbours."""
    order, i = [0], 0
    while i < len(order):
        node = order[i]
        i += 1
        if left[node] != -1:
            order.extend((int(left[node]), int(right[node])))
    return order


def _placed(
    tree: Any, order: list[int], offset: int, n_classes: int, classifier: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The tree's nodes as NODE records in ``order``, and their leaf values."""
    ids = np.asarray(order)
    position = np.empty(len(order), dtype=np.int64)
    position[ids] = np.arange(len(order))
    leaf = tree.children_left[ids] == -1
    nodes = np.empty(len(order), dtype=NODE)
    # A leaf points at itself behind a +inf threshold, so every walk can take the
    # forest's full depth without a branch on "is this a leaf".
    nodes["left"] = np.where(leaf, np.arange(len(order)), position[tree.children_left[ids]])
    nodes["left"] += offset
    nodes["feature"] = np.where(leaf, 0, tree.feature[ids])
    nodes["threshold"] = np.where(leaf, np.float32(np.inf), _round_down_f32(tree.threshold[ids]))
    nodes["nan_right"] = ~tree.missing_go_to_left[ids].astype(bool) & ~leaf
    values = tree.value[ids, 0, :n_classes] if classifier else tree.value[ids, 0, :1]
    return nodes, np.ascontiguousarray(values, dtype=np.float64)


def _round_down_f32(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold."""
    nearest = thresholds.astype(np.float32)
    above = nearest.astype(np.float64) > thresholds
    nearest[above] = np.nextafter(nearest[above], np.float32(-np.inf))
    return nearest


_kernel: Any = None
_kernel_lock = threading.Lock()


def _walk() -> Any:
    """The Numba kernel; Numba compiles it at its first call and caches it on disk."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            from numba import njit

            _kernel = njit(nogil=True, cache=True)(_walk_python)
    return _kernel


def load_in_background() -> None:
    """Start importing Numba and loading the kernel's cached machine code on a thread
    (about 0.5 s, mostly Numba's own imports), so that a load which will use a forest
    does its other work meanwhile."""
    threading.Thread(target=_load, name="flowship-numba", daemon=True).start()


def _load() -> None:
    # One call on a one-leaf forest with the argument types of every real call: Numba
    # loads that specialisation now, and a real call meanwhile waits on Numba's compiler
    # lock rather than loading it a second time.
    nodes = np.zeros(1, dtype=NODE)
    nodes["threshold"] = np.inf
    one = np.zeros(1, dtype=np.int32)
    matrix, sums = np.zeros((1, 1), dtype=np.float32), np.zeros((1, 1))
    try:
        _walk()(matrix, False, one, one, nodes, np.zeros((1, 1)), sums)
    except Exception as exc:  # the real call raises it again, where it is reported
        log.debug("Loading the forest kernel failed: %s", exc)


def _walk_python(X, has_nan, roots, depths, nodes, values, out):  # noqa: N803
    n, k = X.shape[0], values.shape[1]
    at = np.zeros(BLOCK, dtype=np.int32)
    for start in range(0, n, BLOCK):
        rows = min(BLOCK, n - start)
        for t in range(roots.shape[0]):
            for b in range(rows):
                at[b] = roots[t]
            for _ in range(depths[t]):
                for b in range(rows):
                    node = nodes[at[b]]
                    x = X[start + b, node.feature]
                    right = x > node.threshold
                    if has_nan:
                        right |= (x != x) & (node.nan_right != 0)
                    at[b] = node.left + right
            for b in range(rows):
                for c in range(k):
                    out[start + b, c] += values[at[b], c]
