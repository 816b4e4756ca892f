"""Scoring a version on an evaluation data set, for the metric gates.

Predictions go through the same ``Predictor`` that serving and batch use, so a gate
measures exactly what production will run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowship.errors import FlowshipError, InvalidInput, SchemaMismatch, UsageError
from flowship.registry.gates import METRICS

if TYPE_CHECKING:
    import pandas as pd

#: Larger files are refused: gates run synchronously inside a promotion.
MAX_ROWS = 5_000_000
MAX_BYTES = 2 * 1024**3


class EvaluationData:
    """A Parquet or CSV file with the model's feature columns and a target column."""

    def __init__(self, path: str | Path, target: str) -> None:
        self.path = Path(path)
        self.target = target
        self.frame = _read(self.path)
        if target not in self.frame.columns:
            raise InvalidInput(
                f"Evaluation data {self.path} has no target column {target!r} "
                f"(columns: {', '.join(map(str, self.frame.columns[:20]))}).",
                "Set target in flowship.toml (or --target) to the column with the true labels.",
            )
        if self.frame.empty:
            raise InvalidInput(
                f"Evaluation data {self.path} has no rows.", "Point it at a non-empty file."
            )
        if len(self.frame) > MAX_ROWS:
            raise InvalidInput(
                f"Evaluation data {self.path} has {len(self.frame)} rows, more than {MAX_ROWS}.",
                "Use a sample: gates need thousands of rows, not millions.",
            )
        if self.frame[target].isna().any():
            raise InvalidInput(
                f"Evaluation data {self.path}: target column {target!r} has missing values.",
                "Drop the rows without a label.",
            )
        self.y = self.frame[target].to_numpy()
        self.features = self.frame.drop(columns=[target])

    def scorer(self, uri: str, label: str) -> Callable[[str], float]:
        """A function metric -> value for the model at ``uri`` (loaded on first use)."""
        predictions: dict[str, Any] = {}

        def score(metric: str) -> float:
            output = METRICS[metric][1]
            if output not in predictions:
                predictions[output] = self._predict(uri, label, output)
            try:
                return _metric(metric, self.y, predictions[output])
            except ValueError as exc:
                raise InvalidInput(
                    f"Cannot compute {metric} for {label} on {self.path}: {exc}",
                    "Use metrics that fit the model: auc/log_loss/accuracy/f1 for "
                    "classifiers, rmse/mae/r2 for regressors.",
                ) from exc

        return score

    def _predict(self, uri: str, label: str, output: str):
        from flowship.predict import Predictor

        try:
            predictor = Predictor.load(uri, output=output)
            return predictor.predict(self.features)
        except SchemaMismatch as exc:
            raise InvalidInput(
                f"Evaluation data {self.path} does not fit {label}: {exc.message}",
                "Add the missing feature column(s) to the evaluation data, or point "
                "evaluation_data at a file that has them.",
            ) from exc
        except UsageError as exc:  # e.g. probabilities asked of a regressor
            needing = ", ".join(m for m, (_, out) in METRICS.items() if out == output)
            raise InvalidInput(
                f"Cannot compute {needing} for {label}: {exc.message}",
                "Use metrics that fit the model: auc/log_loss/accuracy/f1 for "
                "classifiers, rmse/mae/r2 for regressors.",
            ) from exc
        except FlowshipError:
            raise
        except ValueError as exc:
            raise InvalidInput(
                f"Cannot score {label} with output={output!r}: {exc}",
                "Probability metrics (auc, log_loss) need a classifier with predict_proba.",
            ) from exc


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise UsageError(
            f"Evaluation data {path} does not exist.",
            "Check evaluation_data in flowship.toml (relative paths start at the file's "
            "folder) or --eval-data.",
        )
    if path.stat().st_size > MAX_BYTES:
        raise InvalidInput(
            f"Evaluation data {path} is {path.stat().st_size / 1024**3:.1f} GiB, more than 2 GiB.",
            "Use a sample: gates need thousands of rows, not millions.",
        )
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise InvalidInput(
            f"Cannot read evaluation data {path}: {first}",
            "Check that the file is a valid Parquet or CSV file.",
        ) from exc
    raise UsageError(
        f"Evaluation data {path} is neither Parquet nor CSV.",
        "Use a .parquet or .csv file.",
    )


def _metric(metric: str, y, pred) -> float:
    import numpy as np
    from sklearn import metrics as m

    if metric == "auc":
        if pred.ndim == 2:
            return float(m.roc_auc_score(y, pred, multi_class="ovr"))
        return float(m.roc_auc_score(y, pred))
    if metric == "log_loss":
        return float(m.log_loss(y, pred))
    if metric in ("accuracy", "f1", "precision", "recall"):
        if metric == "accuracy":
            return float(m.accuracy_score(y, pred))
        average = "binary" if len(np.unique(np.concatenate([y, pred]))) <= 2 else "macro"
        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[metric]
        return float(fn(y, pred, average=average, zero_division=0))
    if metric == "rmse":
        return float(np.sqrt(m.mean_squared_error(y, pred)))
    if metric == "mae":
        return float(m.mean_absolute_error(y, pred))
    return float(m.r2_score(y, pred))
