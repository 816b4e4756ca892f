"""Bad input to `flowship rollout`: one line, exit 2, nothing changed."""

from __future__ import annotations

import json

import pytest

ARGS = ("rollout", "start", "churn", "--candidate")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((*ARGS, "nope"), "Deployment 'churn' has no variant 'nope'."),
        ((*ARGS, "challenger", "--steps", "10,5,100"), "is not increasing"),
        ((*ARGS, "challenger", "--steps", "10,50,120"), "has a step outside (0, 100]"),
        ((*ARGS, "challenger", "--steps", "ten"), "Cannot read --steps 'ten'"),
        ((*ARGS, "challenger", "--guardrail", "latency is fine"), "Cannot read guardrail"),
        ((*ARGS, "challenger", "--guardrail", "cpu<=3"), "Unknown guardrail metric 'cpu'"),
        ((*ARGS, "challenger", "--guardrail", "error_rate<=-1"), "not a number >= 0"),
        ((*ARGS, "challenger", "--guardrail", "shadow_agreement>=1.5"), "is a share: 0 to 1"),
        (
            (*ARGS, "challenger", "--guardrail", "server_p99_latency_ratio<=2"),
            "reads the servers' /metrics, and none are given",
        ),
        ((*ARGS, "challenger", "--metrics-url", "localhost:9"), "is not an http(s) URL"),
        ((*ARGS, "challenger", "--bake", "soon"), "Cannot read --bake 'soon'"),
        ((*ARGS, "challenger", "--min-requests", "0"), "--min-requests 0 is out of range"),
        ((*ARGS, "challenger", "--webhook", "ftp://x"), "is not an http(s) URL"),
        ((*ARGS, "challenger", "--champion", "challenger"), "needs a champion variant"),
        (("rollout", "start", "fraud", "--candidate", "x"), "No deployment named 'fraud'"),
        (("rollout", "status", "churn"), "has no rollout"),
        (("rollout", "pause", "churn"), "has no active rollout"),
        (("rollout", "abort", "churn"), "has no active rollout"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli, deployment, args, message):
    before = cli("deployment", "history", "churn", "--json").stdout
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert cli("deployment", "history", "churn", "--json").stdout == before


def test_a_second_rollout_is_refused(cli, deployment):
    first = cli("rollout", "start", "churn", "--candidate", "challenger", "--json")
    assert first.exit_code == 0, first.stderr
    before = json.loads(cli("deployment", "history", "churn", "--json").stdout)
    second = cli("rollout", "start", "churn", "--candidate", "challenger")
    assert second.exit_code == 2 and "already has a running rollout" in second.stderr
    assert json.loads(cli("deployment", "history", "churn", "--json").stdout) == before
