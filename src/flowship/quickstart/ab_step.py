"""The tour's A/B step: record a 90/10 deployment of the Production model and the
candidate, serve it, send customers, and read the prediction log back."""

from __future__ import annotations

from typing import Any

from flowship.quickstart import Tour

NAME = "churn-ab"
SPEC = """\
name: {name}
model: {model}
key: customer_id                   # a customer always gets the same variant
variants:
  champion:   {{ref: "@production", weight: 90}}
  challenger: {{ref: "{candidate}", weight: 10}}
log: {{table: prediction_log, flush_interval_s: 0.5}}
"""


def ab_step(tour: Tour, *, customers: int = 60) -> dict[str, int]:
    """Returns rows answered per variant in this run (read back from the log)."""
    import httpx

    from flowship.deployments import DeploymentSpec, apply
    from flowship.quickstart.data import FEATURES, churn_frame
    from flowship.quickstart.serve_step import running_server

    candidate = tour.versions.get("candidate", "2")
    path = tour.workdir / f"{NAME}.deployment.yaml"
    path.write_text(SPEC.format(name=NAME, model=tour.model, candidate=candidate))
    tour.say(f"$ flowship deployment apply {path.name}")
    revision = apply(DeploymentSpec.from_yaml(path), reason="quickstart A/B test")
    tour.say(f"Deployment {NAME} is at revision {revision.revision}: champion 90%, challenger 10%.")
    frame = churn_frame(customers, seed=21, first_id=700_000)
    columns = ["customer_id", *FEATURES]
    request_ids = []
    with running_server(["--deployment", NAME, "--output", "proba"], say=tour.say) as url:
        for start in range(0, customers, 20):
            rows = frame[columns].iloc[start : start + 20].values.tolist()
            response = httpx.post(
                f"{url}/invocations", json={"columns": columns, "data": rows}, timeout=30
            )
            response.raise_for_status()
            request_ids.append(response.headers["x-flowship-request-id"])
            tour.say(
                f"POST {len(rows)} customers -> answered by "
                f"{response.headers['x-flowship-variant']} "
                f"(versions {response.headers['x-flowship-model-version']})"
            )
    counts = _read_back(revision.spec.log.uri, request_ids, tour)  # type: ignore[union-attr]
    tour.say(
        f"Shift traffic with: flowship traffic {NAME} champion=50 challenger=50; "
        f"undo with: flowship traffic {NAME} --undo; see every revision with: "
        f"flowship deployment history {NAME}"
    )
    return counts


def _read_back(uri: str, request_ids: list[str], tour: Tour) -> dict[str, int]:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(uri).to_pyarrow_table(
        columns=["request_id", "variant", "model_version", "output"]
    )
    table = table.filter(pc.is_in(table["request_id"], value_set=_array(request_ids)))
    counts: dict[str, int] = {}
    rows: list[list[Any]] = []
    for group in (
        table.group_by(["variant", "model_version"]).aggregate([("output", "count")]).to_pylist()
    ):
        counts[group["variant"]] = group["output_count"]
        rows.append([group["variant"], group["model_version"], group["output_count"]])
    tour.say(f"Read back from the prediction log ({uri}):")
    tour.show(None, ["variant", "version", "rows"], sorted(rows))
    return counts


def _array(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.string())
