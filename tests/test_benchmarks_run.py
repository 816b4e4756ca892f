"""Every benchmark that can run in seconds, run small: a benchmark that no longer runs
(an API it calls was renamed) is found here, not when someone needs its numbers.
Nothing is timed. (``serving.py`` and ``traffic.py`` need wrk and minutes; ``drift.py``
a minute even small: the docs' commands run them.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "printed"),
    [
        ("metrics_cost.py", ["--number", "200"], "us per request's metric updates"),
        ("variant_metrics_cost.py", ["--turns", "200"], "tally"),
        ("ab.py", ["--rows", "2000", "--experiments", "20"], "peak"),
        ("performance.py", ["--rows", "5000", "--clean"], "predictions x"),
        pytest.param(
            "predict.py", ["--rows", "1000", "--repeat", "10"], "backend", marks=pytest.mark.slow
        ),
        pytest.param(
            "route_cost.py",
            ["--blocks", "1", "--opcodes", "80"],
            "opcodes a request",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "batch.py", ["--rows", "5000", "--models", "lr"], "work folder", marks=pytest.mark.slow
        ),
    ],
)
def test_benchmark_runs(script: str, args: list[str], printed: str, tmp_path: Path) -> None:
    # Stores a user's environment may name: a benchmark must leave them alone.
    trap = tmp_path / "user-stores"
    trap.mkdir()
    stores = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{trap / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{trap / 'registry.db'}",
        "FLOWSHIP_DATABASE_URL": f"sqlite:///{trap / 'state.db'}",
        "FLOWSHIP_TABLES_URI": str(trap / "tables"),
    }
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=tmp_path,
        # TMPDIR: batch.py keeps its work folder
        env={**os.environ, **stores, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert printed in done.stdout
    assert list(trap.iterdir()) == []


@pytest.mark.parametrize("args", [["--opcodes", "-1"], ["--blocks", "0"]])
def test_route_cost_refuses_counts_it_cannot_use(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "route_cost.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--blocks takes 1 or more, --opcodes 0 or more" in done.stderr
    assert "Traceback" not in done.stderr
