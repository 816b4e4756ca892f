"""`flowship shadow report`: shadow answers paired with the primary's by request id."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.monitoring.experiment_data import AS_OF, experiment, write_log


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow")
    log, _ = experiment(keys=800, seed=3, shadow="v3", shadow_quality=0.8)
    return log, write_log(log, root / "log")


def test_agreement_correlation_and_latency_match_the_log(cli, shadowed):
    log, path = shadowed
    result = cli("shadow", "report", "churn", "--log", path, "--as-of", AS_OF.isoformat(), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    prim = log[log["role"] == "primary"].set_index("request_id")
    shad = log[log["role"] == "shadow"].set_index("request_id").loc[prim.index]
    (s,) = report["shadows"]
    assert s["variant"] == "v3" and s["paired"] == len(prim) and s["failed"] == 0
    assert s["agreement"] == pytest.approx(
        ((prim["output"] >= 0.5) == (shad["output"] >= 0.5)).mean()
    )
    corr = np.corrcoef(prim["output"], shad["output"])[0, 1]
    assert s["score_correlation"] == pytest.approx(corr)
    assert s["latency_ms"]["p99"] == pytest.approx(np.quantile(shad["latency_ms"], 0.99))
    assert report["primary_latency"]["p50"] == pytest.approx(np.median(prim["latency_ms"]))
    gaps = (prim["output"] - shad["output"]).abs().sort_values(ascending=False)
    top = report["disagreements"]
    assert len(top) == 10 and top[0]["request_id"] == gaps.index[0]
    assert abs(top[0]["primary_score"] - top[0]["shadow_score"]) == pytest.approx(gaps.iloc[0])


def test_min_agreement_exits_1_and_html_is_offline(cli, shadowed, tmp_path):
    _, path = shadowed
    page = tmp_path / "shadow.html"
    result = cli(
        "shadow", "report", "churn", "--log", path, "--as-of", AS_OF.isoformat(),
        "--min-agreement", "0.99", "--html", str(page), "--top", "3",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "below the required 99.0%" in result.stderr and "v3: agrees on" in result.stderr
    text = page.read_text()
    assert "default-src 'none'" in text and "<script" not in text and "href=" not in text
    assert "id='shadow-disagreements'" in text and "id='shadow-latency'" in text


def test_failed_shadow_calls_are_counted_not_compared(cli, tmp_path):
    log, _ = experiment(keys=200, seed=4, shadow="v3")
    shadow_rows = log.index[log["role"] == "shadow"]
    log.loc[shadow_rows[:10], "status"] = "error"
    path = write_log(log, tmp_path / "log")
    report = json.loads(
        cli(
            "shadow", "report", "churn", "--log", path, "--as-of", AS_OF.isoformat(), "--json"
        ).stdout
    )
    (s,) = report["shadows"]
    assert s["failed"] == 10 and s["paired"] == len(shadow_rows) - 10


def test_no_shadow_is_no_data_not_an_error(cli, tmp_path):
    log, _ = experiment(keys=100, seed=5)
    result = cli(
        "shadow", "report", "churn", "--log", write_log(log, tmp_path / "log"),
        "--as-of", AS_OF.isoformat(), "--json",
    )  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "no_data"


def test_since_limits_the_window(cli, shadowed):
    log, path = shadowed
    report = json.loads(
        cli(
            "shadow",
            "report",
            "churn",
            "--log",
            path,
            "--as-of",
            AS_OF.isoformat(),
            "--since",
            "7d",
            "--json",
        ).stdout  # fmt: skip
    )
    recent = log[(log["role"] == "shadow") & (log["ts"] >= AS_OF - np.timedelta64(7, "D"))]
    recent = recent[recent["ts"] <= AS_OF]
    assert report["shadows"][0]["shadow_calls"] == len(recent)
