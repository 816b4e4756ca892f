"""Config file parsing, the status table and the metrics text format."""

from __future__ import annotations

import asyncio

import pytest

from flowship.errors import (
    ConfigError,
    FlowshipError,
    GateFailed,
    InvalidInput,
    ModelNotFound,
    SchemaMismatch,
    Unavailable,
)
from flowship.serving.config import ServeConfig
from flowship.serving.errors import (
    BodyTooLarge,
    Overloaded,
    TimedOut,
    message_for,
    retry_after,
    status_for,
)
from flowship.serving.metrics import FLUSH_S, ServingMetrics
from flowship.serving.router import _Answer
from tests.serving._server import metric


def test_config_from_yaml_with_overrides(tmp_path):
    path = tmp_path / "deployment.yaml"
    path.write_text("ref: models:/churn@production\noutput: proba\nport: 8000\nworkers: 2\n")
    config = ServeConfig.from_yaml(path, port=9000, workers=None)
    assert (config.ref, config.output, config.port, config.workers) == (
        "models:/churn@production", "proba", 9000, 2,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "ref: m\noutput: probs\n",
            "field 'output': Input should be 'predict' or 'proba' (got 'probs')",
        ),
        ("ref: m\nprot: 1\n", "unknown field 'prot'"),
        ("- a\n- b\n", "expected a mapping"),
        ("ref: [unclosed\n", "not a readable YAML file"),
        ("port: 5000\n", "field 'ref' is required"),
        ("ref: m\nworkers: 0\n", "field 'workers': Input should be greater than or equal to 1"),
    ],
)
def test_bad_config_files_name_the_file_and_field(tmp_path, text, needle):
    path = tmp_path / "deployment.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        ServeConfig.from_yaml(path)
    assert str(path) in caught.value.message and needle in caught.value.message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        ServeConfig.from_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SchemaMismatch("x"), 400, "INVALID_PARAMETER_VALUE"),
        (InvalidInput("x"), 400, "BAD_REQUEST"),
        (BodyTooLarge(10), 413, "REQUEST_LIMIT_EXCEEDED"),
        (ModelNotFound("m"), 404, "RESOURCE_DOES_NOT_EXIST"),
        (Overloaded("3 waiting"), 503, "TEMPORARILY_UNAVAILABLE"),
        (Unavailable("x"), 503, "TEMPORARILY_UNAVAILABLE"),
        (TimedOut(1.0), 504, "DEADLINE_EXCEEDED"),
        (GateFailed("x", []), 422, "INVALID_STATE"),
        (FlowshipError("x"), 500, "INTERNAL_ERROR"),
    ],
)
def test_status_table(error, status, code):
    assert status_for(error) == (status, code)


def test_retry_after_and_truncation():
    assert retry_after(Overloaded("busy")) == "1" and retry_after(InvalidInput("x")) is None
    assert len(message_for(InvalidInput("x" * 10_000))) <= 2000


def test_metrics_render_prometheus_text():
    m = ServingMetrics()
    m.requests.inc("churn", "1", "onnx", "mlflow", "200")
    m.latency.observe(0.0007, "churn", "1", "onnx", "mlflow")
    m.latency.observe(0.02, "churn", "1", "onnx", "mlflow")
    m.model_info.set('we"ird', "1", "onnx", "models:/x", value=1)
    text = m.render().decode()
    assert "# TYPE flowship_requests_total counter" in text
    labels = {"model": "churn", "version": "1", "backend": "onnx", "protocol": "mlflow"}
    assert metric(text, "flowship_requests_total", **labels, status="200") == 1
    assert metric(text, "flowship_request_duration_seconds_bucket", **labels, le="0.001") == 1
    assert metric(text, "flowship_request_duration_seconds_bucket", **labels, le="+Inf") == 2
    assert 'model="we\\"ird"' in text
    assert m.latency.count("churn", "1", "onnx", "mlflow") == 2


def test_the_tally_writes_flush_s_later_and_a_scrape_sees_everything():
    """Requests answered within FLUSH_S (10 ms) reach the metrics together, FLUSH_S after
    the first; a scrape before then still sees them all (render flushes first)."""
    m = ServingMetrics()
    labels = {"model": "churn", "version": "1", "backend": "onnx", "protocol": "mlflow"}

    async def turn() -> tuple[float, str, float]:
        for seconds in (0.0002, 0.0003, 0.02):
            m.tally.request(("churn", "1", "onnx"), "mlflow", 200, seconds)
        m.tally.request(("churn", "1", "onnx"), "mlflow", 400, 0.0001)
        m.tally.queue(5)
        before = m.requests.value("churn", "1", "onnx", "mlflow", "200")
        scraped = m.render().decode()
        m.tally.request(("churn", "1", "onnx"), "mlflow", 200, 0.0004)
        await asyncio.sleep(FLUSH_S * 20)  # the flush after FLUSH_S writes the last one
        after = m.requests.value("churn", "1", "onnx", "mlflow", "200")
        return before, scraped, after

    before, scraped, after = asyncio.run(turn())
    assert before == 0  # nothing written during the turn
    assert metric(scraped, "flowship_requests_total", **labels, status="200") == 3
    assert metric(scraped, "flowship_requests_total", **labels, status="400") == 1
    assert metric(scraped, "flowship_request_duration_seconds_bucket", **labels, le="0.0005") == 3
    assert metric(scraped, "flowship_request_duration_seconds_count", **labels) == 4
    assert metric(scraped, "flowship_queue_depth") == 5
    assert after == 4


def test_a_routed_request_counts_its_request_and_variant_metrics_in_one_call():
    """LoopTally.routed feeds the request metrics (by the first row's model) and the three
    per-variant ones once per loop turn; a request split between two variants counts once
    for each, with its rows apart."""
    m = ServingMetrics()
    variant = {"deployment": "churn", "variant": "champion"}
    model = {"model": "churn", "version": "1", "backend": "onnx", "protocol": "mlflow"}
    champion = _Answer((), (), (), (("churn", "champion"),), ("churn", "1", "onnx"))
    split = (("churn", "challenger"), ("churn", "champion"))
    both = _Answer((), (), (), split, ("churn", "2", "onnx"))

    async def turn() -> float:
        m.tally.routed(champion, (1,), "mlflow", 0.0003)
        m.tally.routed(champion, (3,), "mlflow", 0.02)
        m.tally.routed(both, (2, 5), "v2", 0.02)
        return m.variants().rows.value("churn", "champion")

    during = asyncio.run(turn())
    text = m.render().decode()
    assert during == 0
    assert metric(text, "flowship_variant_rows_total", **variant) == 9
    assert metric(text, "flowship_variant_rows_total", variant="challenger") == 2
    assert metric(text, "flowship_variant_requests_total", **variant, outcome="ok") == 3
    assert metric(text, "flowship_variant_requests_total", variant="challenger") == 1
    assert metric(text, "flowship_variant_request_duration_seconds_bucket", **variant,
                  le="0.0005") == 1  # fmt: skip
    assert metric(text, "flowship_variant_request_duration_seconds_count", **variant) == 3
    assert metric(text, "flowship_requests_total", **model, status="200") == 2
    assert metric(text, "flowship_request_duration_seconds_count", **model) == 2
    assert metric(text, "flowship_requests_total", model="churn", version="2", protocol="v2") == 1


@pytest.mark.parametrize("multiprocess", [False, True])
def test_observing_many_values_at_once_matches_observing_each(multiprocess, tmp_path, monkeypatch):
    """Tripwire: ``Histogram.observe_many`` writes prometheus_client's private bucket
    and sum values; it must render what one ``observe`` per value renders, in one
    process and in the workers' multiprocess mode."""
    if multiprocess:  # as in a worker: values in mapped files (chosen at import there)
        from prometheus_client import values as prometheus_values

        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        monkeypatch.setattr(prometheus_values, "ValueClass", prometheus_values.MultiProcessValue())
    values = [0.0001, 0.0005, 0.0005001, 0.001, 0.02, 0.0999, 0.1, 2.5, 3.0, 1e9, 0.0]
    one_by_one, at_once = ServingMetrics(), ServingMetrics()
    for value in values:
        one_by_one.latency.observe(value, "a", "1", "onnx", "mlflow")
    # ... and the same values into a second histogram (a deployment's variant latency)
    variant = at_once.variants().latency, ("churn", "champion")
    at_once.latency.observe_many(values, ("b", "1", "onnx", "mlflow"), variant)
    text = (at_once if multiprocess else one_by_one).render().decode()
    if not multiprocess:
        text += at_once.render().decode()
    for le in ("0.0005", "0.001", "0.025", "0.1", "2.5", "+Inf"):
        expected = metric(text, "flowship_request_duration_seconds_bucket", model="a", le=le)
        assert expected == metric(
            text, "flowship_request_duration_seconds_bucket", model="b", le=le
        ), le
        assert expected == metric(
            text, "flowship_variant_request_duration_seconds_bucket", variant="champion", le=le
        ), le
    for name, labels in (
        ("flowship_request_duration_seconds", {"model": "b"}),
        ("flowship_variant_request_duration_seconds", {"variant": "champion"}),
    ):
        assert metric(text, f"{name}_count", **labels) == len(values)
        assert metric(text, f"{name}_sum", **labels) == pytest.approx(sum(values))


def test_counters_are_printed_exactly():
    """Not rounded to 6 significant digits: 12,345,678 requests read 12,345,678."""
    m = ServingMetrics()
    m.requests.inc("churn", "1", "onnx", "mlflow", "200", amount=12_345_678)
    m.requests.inc("churn", "1", "onnx", "mlflow", "200")
    text = m.render().decode()
    assert metric(text, "flowship_requests_total", status="200") == 12_345_679
