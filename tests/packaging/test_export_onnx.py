"""``flowship export onnx``: the file reproduces the Predictor, carries its model's
identity, and is refused (nothing written) when it would not be faithful."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.packaging.conftest import SEED_COLUMNS, SEED_REQUEST

ORT_NODE = "onnxruntime-node@1.30.0"


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_export_writes_a_faithful_file_with_the_models_identity(store, cli, tmp_path):
    from flowship.packaging.onnx_file import read_metadata
    from flowship.predict import Predictor

    out = tmp_path / "churn.onnx"
    result = cli("export", "onnx", "models:/churn@production", "-o", out)
    assert result.exit_code == 0, result.stderr
    meta = read_metadata(out)
    assert meta["flowship.model_name"] == "churn"
    assert meta["flowship.model_version"] == "1"
    assert meta["flowship.input_dtype"] == "float64"
    assert json.loads(meta["flowship.input_order"]) == SEED_COLUMNS
    assert [c["name"] for c in json.loads(meta["flowship.signature"])] == SEED_COLUMNS
    assert json.loads(meta["flowship.classes"]) == [0, 1]
    assert "300 from the baseline" in meta["flowship.parity"]
    assert len(meta["flowship.run_id"]) == 32
    rows = store.data.head(50)
    session = _session(out)
    got = session.run(None, {"input": rows[SEED_COLUMNS].to_numpy(np.float64)})[1][:, 1]
    want = Predictor.load("models:/churn/1", output="proba", backend="native").predict(rows)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_json_output_and_tree_models_export_in_float32(store, cli, tmp_path):
    out = tmp_path / "rf.onnx"
    result = cli("export", "onnx", "models:/churn/2", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["dtype"] == "float32" and body["model_version"] == "2"
    assert body["max_gap"] <= 1e-5 and body["baseline_rows"] == 0
    assert _session(out).get_inputs()[0].type == "tensor(float)"


def test_opset_is_honoured_and_checked(store, cli, tmp_path):
    import onnx

    out = tmp_path / "op.onnx"
    result = cli("export", "onnx", "models:/churn/1", "-o", out, "--opset", "11", "--json")
    assert result.exit_code == 0, result.stderr
    model = onnx.load(str(out))
    # skl2onnx uses the oldest opset that has what the graph needs, up to --opset.
    assert {o.domain: o.version for o in model.opset_import}[""] <= 11
    assert json.loads(result.stdout)["opset"] <= 11
    bad = cli("export", "onnx", "models:/churn/1", "-o", tmp_path / "x.onnx", "--opset", "999")
    assert bad.exit_code == 2
    assert "Opset 999 is out of range" in bad.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_parity_refusal_names_the_measured_difference(store, cli, tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "shift.onnx"
    result = cli("export", "onnx", "models:/shift/1", "-o", out, "--float32")
    assert result.exit_code == 1
    assert "does not convert to a faithful ONNX graph" in result.stderr
    assert "float32 probabilities differ by up to" in result.stderr
    assert "Nothing was written" in result.stderr
    assert list(out.parent.iterdir()) == []
    # In double precision the same model is faithful.
    assert cli("export", "onnx", "models:/shift/1", "-o", out).exit_code == 0


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("models:/nope/1", "Model 'nope' is not registered."),
        ("models:/churn/9", "Model 'churn' has no version 9."),
        ("models:/custom/1", "cannot be exported to ONNX: flavor python_function"),
        ("models:/mixed/1", "its signature has non-numeric columns"),
        ("", "The model reference is empty."),
    ],
)
def test_bad_refs_and_flavours_write_nothing(store, cli, tmp_path, ref, message):
    out = tmp_path / "m.onnx"
    result = cli("export", "onnx", ref, "-o", out)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the error and its hint
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_existing_file_is_replaced_only_if_flowship_wrote_it(store, cli, tmp_path):
    foreign = tmp_path / "notes.onnx"
    foreign.write_text("my own notes")
    result = cli("export", "onnx", "models:/churn/1", "-o", foreign)
    assert result.exit_code == 2
    assert "exists and was not written by flowship" in result.stderr
    assert foreign.read_text() == "my own notes"
    folder = cli("export", "onnx", "models:/churn/1", "-o", tmp_path)
    assert folder.exit_code == 2 and "is a folder" in folder.stderr
    missing = cli("export", "onnx", "models:/churn/1", "-o", tmp_path / "no" / "m.onnx")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    ours = tmp_path / "m.onnx"
    assert cli("export", "onnx", "models:/churn/2", "-o", ours).exit_code == 0
    assert cli("export", "onnx", "models:/churn/1", "-o", ours).exit_code == 0
    from flowship.packaging.onnx_file import read_metadata

    assert read_metadata(ours)["flowship.model_version"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "m.onnx", "notes.onnx"]


@pytest.fixture(scope="session")
def ort_node(tmp_path_factory) -> Path:
    """ONNX Runtime for Node.js from the npm registry, installed for this session."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: the JavaScript check of the ONNX export needs them")
    folder = tmp_path_factory.mktemp("ort-node")
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}  # no CUDA download
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", ORT_NODE],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.mark.parametrize("version", ["1", "2"])
def test_nodejs_onnx_runtime_gives_pythons_answers(store, cli, tmp_path, ort_node, version):
    from flowship.packaging.onnx_file import read_metadata
    from flowship.predict import Predictor

    out = tmp_path / "model.onnx"
    assert cli("export", "onnx", f"models:/churn/{version}", "-o", out).exit_code == 0
    meta = read_metadata(out)
    rows = store.data.sample(40, random_state=1)
    # Columns in another order than the file's: the script reorders, as an app would.
    body = {"columns": SEED_COLUMNS[::-1], "data": rows[SEED_COLUMNS[::-1]].values.tolist()}
    body["data"] += [row[::-1] for row in SEED_REQUEST["data"]]
    (tmp_path / "rows.json").write_text(json.dumps(body))
    done = subprocess.run(
        ["node", str(Path(__file__).parent / "score_onnx.js"), str(out), "rows.json"],
        cwd=tmp_path,
        env={
            **os.environ,
            "NODE_PATH": str(ort_node / "node_modules"),
            "INPUT_ORDER": meta["flowship.input_order"],
            "INPUT_DTYPE": meta["flowship.input_dtype"],
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    proba = np.array(answer["outputs"]["probabilities"]).reshape(-1, 2)[:, 1]
    frame = {c: [r[SEED_COLUMNS[::-1].index(c)] for r in body["data"]] for c in SEED_COLUMNS}
    predictor = Predictor.load(f"models:/churn/{version}", output="proba", backend="native")
    np.testing.assert_allclose(proba, predictor.predict(frame), atol=1e-5, rtol=0)
    labels = Predictor.load(f"models:/churn/{version}", backend="native").predict(frame)
    classes = np.array(json.loads(meta["flowship.classes"]))
    assert meta["flowship.label_rule"] == "argmax"
    got_labels = classes[np.argmax(np.array(answer["outputs"]["probabilities"]).reshape(-1, 2), 1)]
    np.testing.assert_array_equal(got_labels, labels)
