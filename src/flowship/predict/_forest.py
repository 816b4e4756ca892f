"""Compiled forests: scikit-learn's random forests and extra trees walked by a small C kernel.

scikit-learn walks a tree with one branch per node, and on real inputs about half of
those branches are mispredicted: that is most of its 1.8 µs a row for 50 trees of depth
8. The kernel (``_forest.c``) walks 32 rows through a tree together without branching
(children are stored side by side, so the next node is ``left + (x > threshold)``),
about four times faster on one core, and ctypes releases the GIL while it runs, so
slices score on every core.

The kernel is compiled when flowship is built or installed (``hatch_build.py``, the
build backend's hook, editable installs included) into ``_forest_kernel.so`` inside this
package, and loaded with ctypes in well under a millisecond; nothing is compiled at run
time. (Numba did the same job 30% slower and cost 0.33 s of imports in every process, a
third of a million-row job.) Where no C compiler was available at install time, forests
are scored by ONNX Runtime, and the reason says so.

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

import ctypes
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from flowship.errors import UsageError
from flowship.predict.backends import Output, is_classifier

log = logging.getLogger(__name__)

SUPPORTED = {
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
}
# One 16-byte record per node (node_t in _forest.c), so a step of a walk touches one
# cache line (about 9% faster than an array per field, and than 13-byte records that
# straddle lines): the left child (the right one follows it), the feature, the
# threshold, and whether NaN goes right (an int32 for the padding's sake).
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
        self.arrays = _checked(arrays)
        self._classes = arrays["classes"] if len(arrays["classes"]) else None
        self._width = int(arrays["nodes"]["feature"].max()) + 1
        self.output = output

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        walk = kernel()
        if isinstance(walk, str):
            raise UsageError(f"Forests cannot be compiled here: {walk}.", "Reinstall flowship.")
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] < self._width:
            raise ValueError(f"the forest reads {self._width} features; got {matrix.shape}")
        arrays = self.arrays
        roots, values = arrays["roots"], arrays["values"]
        sums = np.zeros((len(matrix), values.shape[1]), dtype=np.float64)
        walk(
            matrix.ctypes.data,
            matrix.shape[0],
            matrix.shape[1],
            int(np.isnan(matrix).any()),
            roots.ctypes.data,
            arrays["depths"].ctypes.data,
            len(roots),
            arrays["nodes"].ctypes.data,
            values.ctypes.data,
            values.shape[1],
            sums.ctypes.data,
        )
        sums /= len(roots)
        if self._classes is None:
            return sums[:, 0]
        if self.output == "proba":
            return sums[:, 1] if sums.shape[1] == 2 else sums
        return self._classes.take(np.argmax(sums, axis=1))


def _checked(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays, once it is certain that no walk can leave them: the kernel trusts every
    index it reads, and a recorded forest comes back from a file that could be damaged.
    Every inner node's children are nodes; a leaf points at itself and goes left always."""
    nodes, values, roots = arrays["nodes"], arrays["values"], arrays["roots"]
    count = len(nodes)
    position = np.arange(count)
    leaf = nodes["left"] == position
    inner = ~leaf
    problems = [
        nodes.dtype != NODE or values.dtype != np.float64 or values.ndim != 2,
        roots.dtype != np.int32 or arrays["depths"].dtype != np.int32,
        count == 0 or len(values) != count or len(roots) != len(arrays["depths"]),
        bool(((roots < 0) | (roots >= count)).any()),
        bool((arrays["depths"] < 0).any()),
        bool(((nodes["left"][inner] < 0) | (nodes["left"][inner] >= count - 1)).any()),
        bool((nodes["feature"] < 0).any()),
        bool((nodes["threshold"][leaf] != np.inf).any() or nodes["nan_right"][leaf].any()),
    ]
    if any(problems) or not all(a.flags.c_contiguous for a in (nodes, values, roots)):
        raise ValueError("the forest's arrays are not a well-formed forest")
    return arrays


def compile_forest(estimator: Any, output: Output) -> tuple[Forest | None, str]:
    """The estimator as a Forest, or None and why it cannot be one."""
    kind = type(estimator).__name__
    if kind not in SUPPORTED:
        return None, f"{kind} is not a random forest or extra-trees ensemble"
    walk = kernel()
    if isinstance(walk, str):
        return None, walk
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


_PACKAGE = Path(__file__).parent
LIBRARY = _PACKAGE / "_forest_kernel.so"
_NOT_BUILT = (
    "the forest kernel was not built when flowship was installed (no C compiler then); "
    "to build it, install a C compiler and reinstall flowship"
)
_kernel: Any = None
_kernel_lock = threading.Lock()


def kernel() -> Any:
    """The installed walk as a ctypes function, or why there is none (a str)."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            _kernel = load_kernel(LIBRARY)
            if isinstance(_kernel, str):
                log.warning("Forests are not compiled: %s", _kernel)
        return _kernel


def load_kernel(library: Path) -> Any:
    """The walk in ``library``, built by ``hatch_build.py`` at install time, or why it
    cannot be used. Nothing is compiled here: a library is loaded only when its digest
    is the one recorded by the build, from this package's own ``_forest.c``."""
    problem = _untrusted(library)
    if problem is not None:
        return problem
    try:
        walk = ctypes.CDLL(str(library)).flowship_walk
    except (OSError, AttributeError) as exc:  # e.g. a wheel built for another machine
        return f"the forest kernel {library} cannot be loaded: {exc}"
    pointer, count = ctypes.c_void_p, ctypes.c_int64
    walk.argtypes = [pointer, count, count, ctypes.c_int32, pointer, pointer, count]
    walk.argtypes += [pointer, pointer, count, pointer]
    walk.restype = None
    return walk


def _untrusted(library: Path) -> str | None:
    """Why ``library`` must not be loaded, or None."""
    manifest = library.with_suffix(".json")
    if not library.is_file():
        return _NOT_BUILT
    try:
        record = json.loads(manifest.read_text())
        built_from, built = record["source_sha256"], record["library_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{library} has no build record ({manifest.name}); reinstall flowship"
    if built_from != _digest(_PACKAGE / "_forest.c"):
        return f"{library} was built from another _forest.c; reinstall flowship to rebuild it"
    if built != _digest(library):
        return (
            f"{library} is not the library flowship built (its SHA-256 differs from the "
            "build record), so it is not loaded; reinstall flowship"
        )
    return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
