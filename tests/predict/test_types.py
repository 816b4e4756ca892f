"""One rule for MLflow types on every path: the Predictor, /invocations, V2 and batch
accept and refuse the same values of a ``long`` column (before, serving refused 2**63
while batch rounded it through float64 and scored it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowship.errors import SchemaMismatch
from flowship.predict import types
from tests._caches import reset_caches
from tests.serving._server import Server

LONG_MAX, LONG_MIN = 2**63 - 1, -(2**63)
# (value of the long column n, accepted?)
VALUES = [
    (5, True),
    (LONG_MAX, True),
    (LONG_MIN, True),
    (2**53 + 1, True),
    (2**63, False),
    (LONG_MIN - 2048, False),  # the float next to -2**63: JSON parsers read it so
    (2**64, False),
]
PATHS = ["predictor", "invocations", "v2", "batch"]


@dataclass
class Wide:
    uri: str
    home: Path
    server: Server


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wide]:
    """A model whose signature has a long column n and a double column x, served."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from flowship.registry import register_estimator

    home = tmp_path_factory.mktemp("types-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        rng = np.random.default_rng(0)
        x = pd.DataFrame({"n": rng.integers(0, 100, 200), "x": rng.normal(size=200)})
        model = LogisticRegression().fit(x, (x.n > 50).astype(int))
        register_estimator("wide", model, x.head(20))
        from flowship.config import get_settings

        uri = get_settings().resolved_tracking_uri
        reset_caches()
    server = Server.flowship(
        "models:/wide/1", home=home / "serve", tracking_uri=uri, log=home / "server.log"
    )
    server.start()
    yield Wide(uri, home, server)
    server.stop()


def _accepted(path: str, value: int, wide: Wide, tmp_path: Path) -> bool:
    import httpx

    if path == "predictor":
        from flowship.predict import Predictor

        try:
            Predictor.load("models:/wide/1").predict({"n": [value], "x": [0.5]})
        except SchemaMismatch:
            return False
        return True
    if path == "invocations":
        body = json.dumps({"dataframe_split": {"columns": ["n", "x"], "data": [[value, 0.5]]}})
        answer = httpx.post(
            wide.server.url + "/invocations",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code in (200, 400), answer.text
        return answer.status_code == 200
    if path == "v2":
        inputs = [
            {"name": "n", "datatype": types.V2_DATATYPES["long"], "shape": [1], "data": [value]},
            {"name": "x", "datatype": "FP64", "shape": [1], "data": [0.5]},
        ]
        answer = httpx.post(
            wide.server.url + "/v2/models/wide/infer", content=json.dumps({"inputs": inputs})
        )
        assert answer.status_code in (200, 400), answer.text
        return answer.status_code == 200
    from flowship.batch import parse_job, run_job

    if value > 2**64 - 1 or value < LONG_MIN:
        pytest.skip("Parquet has no integer column that holds this value")
    kind = pa.uint64() if value > LONG_MAX else pa.int64()
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1], "n": pa.array([value], kind), "x": [0.5]}), data)
    job = parse_job(
        {
            "model": "models:/wide/1",
            "id": "id",
            "input": str(data),
            "output": {"path": str(tmp_path / "out")},
            "max_reject_fraction": 1.0,
        }
    )
    record = run_job(job)
    assert record.rows_out + record.rows_rejected == 1
    return record.rows_out == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("value", "accepted"), VALUES, ids=[str(v) for v, _ in VALUES])
def test_every_path_agrees_on_a_long(wide, flowship_home, monkeypatch, tmp_path, path, value,
                                     accepted):  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", wide.uri)
    reset_caches()
    assert _accepted(path, value, wide, tmp_path) is accepted


def test_the_refusal_says_the_range(wide, flowship_home, monkeypatch):
    from flowship.predict import Predictor

    monkeypatch.setenv("MLFLOW_TRACKING_URI", wide.uri)
    reset_caches()
    p = Predictor.load("models:/wide/1")
    with pytest.raises(SchemaMismatch) as refused:
        p.predict({"n": [1, 2**63], "x": [0.5, 0.5]})
    assert refused.value.message == (
        "Column 'n' expects long, got out-of-range value 9223372036854775808 in row 1."
    )
    assert refused.value.hint == (
        "Send long values, from -9223372036854775808 to 9223372036854775807."
    )


@pytest.mark.parametrize(
    ("kind", "values", "outside"),
    [
        ("long", np.array([LONG_MAX, LONG_MIN], dtype=np.int64), [False, False]),
        ("long", np.array([2**63, 5], dtype=np.uint64), [True, False]),
        ("long", np.array([2.0**63, 2.0**63 + 2048, -(2.0**63) - 2048]), [False, True, True]),
        (
            "long",
            np.array([2**63, -(2**63) - 1, None, "a"], dtype=object),
            [True, True, False, False],
        ),
        ("integer", np.array([2**31 - 1, 2**31, -(2**31)], dtype=np.int64), [False, True, False]),
        ("integer", np.array([2.0**31, -(2.0**31) - 1]), [True, True]),
        ("double", np.array([1e300]), [False]),
    ],
)
def test_out_of_range_is_exact(kind, values, outside):
    assert types.out_of_range(kind, values).tolist() == [bool(o) for o in outside]
