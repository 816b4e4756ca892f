"""flowship embedded in a host program leaves the host's MLflow settings alone: the
tracking and registry URIs it set, and MLflow's environment variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HOST = """
import json, os, sys
import mlflow

host_store = sys.argv[1]
mlflow.set_tracking_uri(host_store)
mlflow.set_registry_uri(host_store)
if sys.argv[2] == "own-http":
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "7"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "120"
names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
         "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")

def settings():
    return {"tracking": mlflow.get_tracking_uri(), "registry": mlflow.get_registry_uri(),
            **{n: os.environ.get(n) for n in names}}

before = settings()
import flowship
after_import = settings()
predictor = flowship.Predictor.load(sys.argv[3])
import pandas as pd
rows = pd.DataFrame([{"age": 40.0, "tenure_months": 12.0, "recency_days": 30.0,
                      "frequency": 3.0, "monetary_total": 250.0}])
predictions = predictor.predict(rows)
versions = [v.version for v in flowship.list_versions("ChurnPredictor")]
print(json.dumps({"before": before, "after_import": after_import, "after": settings(),
                  "predictions": len(predictions), "versions": versions}))
"""


def _run_host(tmp_path, home, http: str) -> dict:
    host_store = f"sqlite:///{tmp_path / 'host-mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # The host names flowship's store explicitly; its own MLflow store is another one.
    env.update(FLOWSHIP_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-c", HOST, host_store, http, "models:/ChurnPredictor/1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"]["tracking"] == host_store
    assert result["predictions"] == 1 and result["versions"] == ["1", "2"]
    return result


def test_flowship_keeps_the_hosts_mlflow_settings(register_two, flowship_home, tmp_path):
    register_two()
    home = flowship_home
    result = _run_host(tmp_path, home, "none")
    assert result["after_import"] == result["before"]
    assert result["after"] == result["before"]
    assert result["after"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] is None


def test_the_hosts_own_http_settings_stay(register_two, flowship_home, tmp_path):
    register_two()
    home = flowship_home
    result = _run_host(tmp_path, home, "own-http")
    assert result["after"] == result["before"]
    assert result["after"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
