"""MLflow's own deployment client on flowship's recorded deployments (target ``flowship``),
found through the ``mlflow.deployments`` entry point, predicting through a real
``flowship serve --deployment``."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from tests.packaging.conftest import SEED_REQUEST
from tests.serving._server import Server, free_port, server_env


@pytest.fixture
def client(store):
    from mlflow.deployments import get_deploy_client

    return get_deploy_client("flowship")


def test_create_get_list_update_delete(client, cli):
    from mlflow.exceptions import MlflowException

    made = client.create_deployment(
        "churn-api", "models:/churn@production", config={"key": "customer_id"}
    )
    assert made["name"] == "churn-api" and made["revision"] == 1
    assert made["model_uri"] == "models:/churn@production"
    got = client.get_deployment("churn-api")
    assert got["spec"]["key"] == "customer_id" and got["spec"]["variants"]["main"]["weight"] == 100
    assert [d["name"] for d in client.list_deployments()] == ["churn-api"]
    # flowship's own CLI sees what MLflow's client recorded, and the other way round.
    shown = cli("deployment", "show", "churn-api", "--json")
    assert shown.exit_code == 0 and "models:/churn@production" in shown.stdout
    updated = client.update_deployment("churn-api", model_uri="models:/churn/2")
    assert updated["revision"] == 2 and updated["model_uri"] == "models:/churn/2"
    with pytest.raises(MlflowException, match="already exists"):
        client.create_deployment("churn-api", "models:/churn/1")
    client.delete_deployment("churn-api")
    with pytest.raises(MlflowException, match="No deployment named 'churn-api'") as missing:
        client.get_deployment("churn-api")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.list_deployments() == []
    history = cli("deployment", "history", "churn-api", "--json")
    assert history.exit_code == 0 and '"delete"' in history.stdout
    again = client.create_deployment("churn-api", "models:/churn/1")
    assert again["revision"] == 4  # the history goes on


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.create_deployment("x", "models:/nope/1"), "Model 'nope' is not registered"),
        (lambda c: c.create_deployment("bad name", "models:/churn/1"), "name"),
        (lambda c: c.create_deployment("x", "models:/churn/1", config={"a": 1}), "Unknown config"),
        (lambda c: c.create_deployment("x", "models:/churn/1", flavor="onnx"), "Flavor 'onnx'"),
        (lambda c: c.update_deployment("ghost", model_uri="models:/churn/1"), "No deployment"),
        (lambda c: c.delete_deployment("ghost"), "No deployment named 'ghost'"),
        (lambda c: c.predict("x", inputs=object()), "Cannot send inputs of type object"),
    ],
)
def test_bad_input_is_an_mlflow_error_and_records_nothing(client, call, message):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=message):
        call(client)
    assert client.list_deployments() == []


def test_update_of_a_split_deployment_names_the_variant(client, tmp_path, cli):
    from mlflow.exceptions import MlflowException

    spec = tmp_path / "d.yaml"
    spec.write_text(
        "name: ab\nmodel: churn\nvariants:\n  champion: {ref: '1', weight: 90}\n"
        "  challenger: {ref: '2', weight: 10}\n"
    )
    assert cli("deployment", "apply", spec).exit_code == 0
    with pytest.raises(MlflowException, match="say which gets the new model"):
        client.update_deployment("ab", model_uri="models:/churn/2")
    done = client.update_deployment(
        "ab", model_uri="models:/churn/2", config={"variant": "champion"}
    )
    assert done["spec"]["variants"]["champion"]["ref"] == "models:/churn/2"


def test_predict_through_a_running_deployment_server(client, store, flowship_home, tmp_path):
    from mlflow.deployments import get_deploy_client
    from mlflow.exceptions import MlflowException

    client.create_deployment("seed", "models:/churn/1")
    port = free_port()
    argv = [sys.executable, "-c", "from flowship.cli import main; main()", "serve",
            "--deployment", "seed", "--port", str(port), "--output", "proba"]  # fmt: skip
    server = Server(
        argv, env=server_env(flowship_home, store.uri), log=tmp_path / "serve.log", port=port
    ).start()
    try:
        remote = get_deploy_client(f"flowship://127.0.0.1:{port}")
        frame = pd.DataFrame(SEED_REQUEST["data"], columns=SEED_REQUEST["columns"])
        answer = remote.predict("seed", frame)
        from flowship.predict import Predictor

        want = Predictor.load("models:/churn/1", output="proba").predict(frame)
        np.testing.assert_allclose(np.ravel(answer.get_predictions()), want, atol=1e-6)
        with pytest.raises(MlflowException, match="answered 400"):
            remote.predict("seed", {"columns": ["age"], "data": [[1]]})
    finally:
        server.stop()
    gone = get_deploy_client(f"flowship://127.0.0.1:{free_port()}")
    with pytest.raises(MlflowException, match="No flowship server answers"):
        gone.predict("seed", {"columns": ["age"], "data": [[1]]})
