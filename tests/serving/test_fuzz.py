"""schemathesis against ``GET /openapi.json`` of a real server: every operation of both
protocols, with bodies generated from the served model's signature. Seeded (derandomized)
and bounded, so a run is repeatable and takes well under a minute. Checks: no 5xx, every
status and body matches the document, and the server stays up with bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving._server import Server
from tests.serving.test_adversarial import RSS_BUDGET_MB, rss_mb

START_RSS: dict[str, float] = {}


@pytest.fixture(scope="module")
def fuzz_target(serving_store, tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("fuzz")
    server = Server.flowship(
        "models:/churn@production", "--poll-interval", "0",
        home=home, tracking_uri=serving_store.uri, log=home / "server.log",
    ).start()  # fmt: skip
    assert server.proc is not None
    START_RSS["mb"] = rss_mb(server.proc.pid)
    yield server
    server.stop()


FUZZ = settings(
    max_examples=20,
    derandomize=True,  # the same examples every run
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_every_operation_holds_to_its_document(fuzz_target):
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case) -> None:
            response = case.call(base_url=fuzz_target.url, timeout=30)
            case.validate_response(response, checks=CHECKS)

        run()


def test_the_server_survived_with_bounded_memory(fuzz_target):
    assert fuzz_target.proc is not None and fuzz_target.proc.poll() is None
    assert httpx.get(fuzz_target.url + "/ping").status_code == 200
    assert rss_mb(fuzz_target.proc.pid) - START_RSS["mb"] < RSS_BUDGET_MB


def test_the_document_follows_the_signature(fuzz_target):
    document = httpx.get(fuzz_target.url + "/openapi.json").json()
    split = document["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["oneOf"][0]["properties"]["dataframe_split"]
    assert split["properties"]["columns"]["items"]["enum"] == ["age", "tenure", "recency", "plan"]
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert "plan: INT64" in infer["summary"]
