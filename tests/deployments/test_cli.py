"""flowship deployment apply/list/show/history and flowship traffic, on a real MLflow
store and state database: the recorded object, its history, and every refusal."""

from __future__ import annotations

import json

import pytest

from tests.deployments.conftest import SPLIT, write_spec


@pytest.fixture
def split(store, tmp_path):
    return write_spec(tmp_path / "churn.deployment.yaml", SPLIT)


def revisions(cli) -> int:
    result = cli("deployment", "history", "churn", "--json")
    return len(json.loads(result.stdout)) if result.exit_code == 0 else 0


def test_apply_show_list_history_traffic_undo(cli, split):
    first = cli("deployment", "apply", split, "--reason", "start the A/B test")
    assert first.exit_code == 0, first.stderr
    assert "churn: revision 1 recorded" in first.stderr
    shown = json.loads(cli("deployment", "show", "churn", "--json").stdout)
    assert shown["revision"] == 1 and shown["actor"] == "tester"
    assert shown["spec"]["variants"]["champion"] == {
        "ref": "@production", "weight": 90.0, "shadow": False, "sample": 1.0
    }  # fmt: skip
    table = cli("deployment", "show", "churn")
    assert "models:/churn@production" in table.stdout and "challenger" in table.stdout

    again = cli("deployment", "apply", split)
    assert again.exit_code == 0 and "unchanged, still revision 1" in again.stderr

    moved = cli("traffic", "churn", "champion=50", "challenger=50", "--reason", "more data")
    assert moved.exit_code == 0, moved.stderr
    assert "revision 2, traffic champion=50 challenger=50" in moved.stderr
    undone = cli("traffic", "churn", "--undo")
    assert undone.exit_code == 0
    assert "revision 3, traffic champion=90 challenger=10" in undone.stderr

    history = json.loads(cli("deployment", "history", "churn", "--json").stdout)
    assert [h["action"] for h in history] == ["apply", "traffic", "undo"]
    assert history[0]["reason"] == "start the A/B test" and history[0]["changes"] == ["created"]
    assert history[1]["changes"] == [
        "variants.challenger.weight: 10 -> 50",
        "variants.champion.weight: 90 -> 50",
    ]
    assert history[2]["reason"] == "undo revision 2"
    assert history[2]["spec"] == history[0]["spec"]
    listed = json.loads(cli("deployment", "list", "--json").stdout)
    assert [(d["name"], d["revision"]) for d in listed] == [("churn", 3)]
    plain = cli("deployment", "history", "churn")
    assert plain.exit_code == 0 and "more data" in plain.stdout


def test_blue_green_is_a_traffic_change_and_undo_switches_back(cli, store, tmp_path):
    spec = write_spec(tmp_path / "bg.yaml", """
name: web
model: churn
variants:
  blue:  {ref: "1", weight: 100}
  green: {ref: "2", weight: 0}
""")  # fmt: skip
    assert cli("deployment", "apply", spec).exit_code == 0
    assert cli("traffic", "web", "green=100", "blue=0").exit_code == 0
    assert (
        json.loads(cli("deployment", "show", "web", "--json").stdout)["spec"]["variants"]["green"][
            "weight"
        ]
        == 100
    )
    assert cli("traffic", "web", "--undo").exit_code == 0
    shown = json.loads(cli("deployment", "show", "web", "--json").stdout)
    assert shown["revision"] == 3 and shown["spec"]["variants"]["blue"]["weight"] == 100


BAD_FILES = {
    "weights": (
        SPLIT.replace("weight: 10", "weight: 5"),
        "the weights of the answering variants sum to 95, not 100 (champion=90, challenger=5)",
    ),
    "shadow_primary": (
        SPLIT + '  candidate: {ref: "3", shadow: true, weight: 10}\n',
        "variant 'candidate' is a shadow and also has weight 10",
    ),
    "unknown_setting": (SPLIT + "colour: blue\n", "unknown field 'colour'"),
    "short_ref_no_model": (
        SPLIT.replace("model: churn\n", ""),
        "has the short ref '@production' but the deployment names no 'model'",
    ),
    "bad_name": (
        SPLIT.replace("name: churn", "name: '../etc'"),
        "field 'name': String should match",
    ),
    "not_a_mapping": ("- just\n- a list\n", "expected a mapping with name and variants"),
    "yaml": ("name: [unclosed\n", "not a readable YAML file"),
    "no_variants": (
        "name: churn\nvariants: {}\n",
        "field 'variants': Dictionary should have at least 1",
    ),
    "negative": (SPLIT.replace("weight: 10", "weight: -10"), "greater than or equal to 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_one_line_exit_2_and_nothing_recorded(cli, store, tmp_path, case):
    text, message = BAD_FILES[case]
    result = cli("deployment", "apply", write_spec(tmp_path / "d.yaml", text))
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 2
    assert cli("deployment", "list", "--json").stdout.strip() == "[]"


def test_a_ref_that_does_not_resolve_is_refused(cli, store, tmp_path):
    for ref, message in (
        ("@nosuchalias", "Variant 'challenger' of 'churn' (models:/churn@nosuchalias) does not"),
        ("42", "Variant 'challenger' of 'churn' (models:/churn/42) does not resolve"),
        ("models:/nosuchmodel@production", "(models:/nosuchmodel@production) does not resolve"),
    ):
        spec = write_spec(tmp_path / "d.yaml", SPLIT.replace('"@staging"', f'"{ref}"'))
        result = cli("deployment", "apply", spec)
        assert result.exit_code == 2 and message in result.stderr, result
    assert cli("deployment", "list", "--json").stdout.strip() == "[]"


def test_missing_file(cli, store, tmp_path):
    result = cli("deployment", "apply", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "nope.yaml: file not found." in result.stderr


def test_traffic_refusals_change_nothing(cli, split):
    assert cli("deployment", "apply", split).exit_code == 0
    cases = [
        (["champion=50"], "would sum to 60, not 100 (champion=50, challenger=10)"),
        (["champion=50", "nosuch=50"], "Deployment 'churn' has no variant 'nosuch'."),
        (["champion=fifty"], "'champion=fifty' is not VARIANT=WEIGHT"),
        (["champion=150", "challenger=-50"], "'champion=150' is not VARIANT=WEIGHT"),
        (["champion=nan"], "'champion=nan' is not VARIANT=WEIGHT"),
        (["champion=50", "champion=50"], "Variant 'champion' is given twice."),
        ([], "No weights given."),
    ]
    for args, message in cases:
        result = cli("traffic", "churn", *args)
        assert result.exit_code == 2 and message in result.stderr, (args, result)
    unknown = cli("traffic", "nosuch", "a=100")
    assert unknown.exit_code == 2 and "No deployment named 'nosuch'" in unknown.stderr
    both = cli("traffic", "churn", "champion=100", "challenger=0", "--undo")
    assert both.exit_code == 2 and "not both" in both.stderr
    nothing = cli("traffic", "churn", "--undo")
    assert nothing.exit_code == 2 and "only revision 1: nothing to undo" in nothing.stderr
    assert revisions(cli) == 1


def test_a_shadow_cannot_take_traffic(cli, store, tmp_path):
    spec = write_spec(tmp_path / "d.yaml", SPLIT + '  candidate: {ref: "3", shadow: true}\n')
    assert cli("deployment", "apply", spec).exit_code == 0
    result = cli("traffic", "churn", "champion=80", "candidate=20")
    assert result.exit_code == 2 and "'candidate' of 'churn' is a shadow" in result.stderr


def test_removing_a_variant_that_still_has_traffic_is_refused(cli, split, tmp_path):
    assert cli("deployment", "apply", split).exit_code == 0
    alone = write_spec(tmp_path / "alone.yaml", SPLIT.replace("weight: 90", "weight: 100")
                       .replace('  challenger: {ref: "@staging", weight: 10}\n', ""))  # fmt: skip
    refused = cli("deployment", "apply", alone)
    assert refused.exit_code == 2
    assert "Variant 'challenger' of 'churn' still has 10% of traffic" in refused.stderr
    assert "flowship traffic churn challenger=0 champion=90" in refused.stderr
    assert revisions(cli) == 1
    assert cli("traffic", "churn", "challenger=0", "champion=100").exit_code == 0
    assert cli("deployment", "apply", alone).exit_code == 0
    assert revisions(cli) == 3


def test_a_stale_expect_revision_is_refused(cli, split):
    assert cli("deployment", "apply", split, "--expect-revision", "0").exit_code == 0
    stale = cli("deployment", "apply", split.parent / split.name, "--expect-revision", "0")
    assert stale.exit_code == 2 and "is at revision 1, not 0" in stale.stderr
    moved = cli("traffic", "churn", "champion=80", "challenger=20", "--expect-revision", "7")
    assert moved.exit_code == 2 and "is at revision 1, not 7" in moved.stderr
    ok = cli("traffic", "churn", "champion=80", "challenger=20", "--expect-revision", "1")
    assert ok.exit_code == 0
    assert revisions(cli) == 2


def test_show_and_history_of_an_unknown_deployment(cli, store):
    for args in (("deployment", "show", "nosuch"), ("deployment", "history", "nosuch", "--json")):
        result = cli(*args)
        assert result.exit_code == 2 and "No deployment named 'nosuch'" in result.stderr


def test_postgres_state_database(cli, split, pg_url):
    assert cli("deployment", "apply", split).exit_code == 0
    assert cli("traffic", "churn", "champion=70", "challenger=30").exit_code == 0
    history = json.loads(cli("deployment", "history", "churn", "--json").stdout)
    assert [h["revision"] for h in history] == [1, 2]


def test_serve_refuses_an_unknown_deployment_or_both_a_ref_and_a_deployment(cli, store):
    unknown = cli("serve", "--deployment", "nosuch", "--port", "0")
    assert unknown.exit_code == 2 and "No deployment named 'nosuch'" in unknown.stderr
    both = cli("serve", "models:/churn@production", "--deployment", "churn")
    assert both.exit_code == 2 and "Give a model ref or --deployment, not both." in both.stderr
    bad = cli("serve", "--deployment", "x" * 500)
    assert bad.exit_code == 2 and "--deployment" in bad.stderr
