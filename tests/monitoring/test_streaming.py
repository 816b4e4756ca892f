"""Bounded-memory pieces: the sampler, the KS approximation and its bound, filters,
folders and tables as sources, and refusals of bad input before any report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import ks_2samp

from flowship.errors import InvalidInput
from flowship.monitoring.drift import KSDrift, check_drift
from flowship.monitoring.drift.local import Reservoir, RowKeys
from flowship.monitoring.sources import open_source


def test_reservoir_keeps_all_values_until_full_then_a_uniform_sample():
    keys = np.random.default_rng(0)
    sampler = Reservoir(1000)
    values = np.arange(800, dtype=float)
    sampler.add(values[:500], RowKeys(keys, 500))
    sampler.add(values[500:], RowKeys(keys, 300))
    np.testing.assert_array_equal(sampler.result(), values)
    rng = np.random.default_rng(1)
    big = Reservoir(1000)
    for _ in range(50):
        big.add(rng.random(20_000), RowKeys(keys, 20_000))
    sample = big.result()
    assert sample.size == 1000 and np.all(np.diff(sample) >= 0)
    # Uniform input, uniform sample: a KS test against U(0, 1) does not reject.
    assert ks_2samp(sample, np.linspace(0, 1, 10_001)).pvalue > 0.001
    assert np.unique(sample).size == 1000  # without replacement


def test_approximate_ks_brackets_the_exact_statistic():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 150_000), "y": rng.lognormal(0, 1, 150_000)})
    cur = pd.DataFrame({"x": rng.normal(0.01, 1, 120_000), "y": rng.lognormal(0.2, 1, 120_000)})
    approx = {c.name: c for c in check_drift(ref, cur, method="ks", mode="approx").columns}
    exact = {c.name: c for c in check_drift(ref, cur, method="ks", mode="exact").columns}
    for name in ("x", "y"):
        low, high = approx[name].approximation["statistic_bounds"]
        assert low <= exact[name].statistic <= high
        assert approx[name].approximation["statistic_error"] < 0.003
        p_low, p_high = approx[name].approximation["p_value_bounds"]
        assert p_low <= exact[name].p_value * (1 + 1e-9) + 1e-300
        assert "binned approximation" in approx[name].reason
        assert exact[name].approximation is None
    assert approx["y"].status == exact["y"].status == "drift"


def test_exact_ks_beyond_its_limit_is_refused_and_auto_approximates():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=3000)})
    cur = pd.DataFrame({"x": rng.normal(size=3000)})
    with pytest.raises(InvalidInput, match="exact KS test needs all 6,000 values"):
        KSDrift(mode="exact", exact_values=5000).fit_score(ref, cur)
    auto = KSDrift(exact_values=5000).fit_score(ref, cur)
    assert auto.columns[0].approximation is not None


def test_hive_folder_and_where_filter(tmp_path, frame):
    for day, shift in (("2026-11-01", 0), ("2026-11-02", 0), ("2026-11-03", 9)):
        part = tmp_path / "scored" / f"prediction_date={day}"
        part.mkdir(parents=True)
        frame(800, seed=hash(day) % 1000, age_shift=shift).to_parquet(part / "p.parquet")
    folder = str(tmp_path / "scored")
    columns = ["age", "monetary", "plan"]
    old = open_source(folder, role="baseline", where="prediction_date < '2026-11-03'")
    new = open_source(folder, role="current", where="prediction_date = '2026-11-03'")
    report = check_drift(old, new, columns=columns)
    assert (report.n_reference, report.n_current) == (1600, 800)
    assert report.drifted_columns == ["age"]
    same = open_source(folder, role="current", where="prediction_date = '2026-11-02'")
    assert check_drift(old, same, columns=columns).drifted_columns == []


def test_delta_table_by_name(tmp_path, frame, monkeypatch):
    from deltalake import write_deltalake

    from flowship.config import get_settings

    uri = get_settings().table_uri("features")
    write_deltalake(uri, pa.Table.from_pandas(frame(1000, seed=1)))
    write_deltalake(uri, pa.Table.from_pandas(frame(500, seed=2)), mode="append")
    source = open_source("table:features", role="current", where="age > 40")
    rows = source.count_rows()
    assert 600 < rows < 900
    assert check_drift("table:features", source).n_current == rows


@pytest.fixture
def pair(frame, write_frames):
    return write_frames(frame(1000, seed=1), frame(1000, seed=2, age_shift=9))


def refused(cli, tmp_path, *args):
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    result = cli("monitor", "drift", *args, "--html", html, "--json", out)
    assert result.exit_code == 2, result.stderr
    assert not html.exists() and not out.exists()  # no partial report
    assert "Traceback" not in result.stderr
    return result.stderr


def test_bad_input_is_one_line_exit_2_and_no_report(cli, pair, tmp_path, frame, write_frames):
    base, cur = pair
    both = ["--baseline", base, "--current", cur]
    err = refused(cli, tmp_path, *both, "--where", "age < -1000")
    assert "current data has no rows matching --where 'age < -1000'" in err
    err = refused(cli, tmp_path, *both, "--baseline-where", "plan = 'nope'")
    assert "baseline has no rows matching --where" in err
    err = refused(cli, tmp_path, *both, "--where", "no_such_column > 1")
    assert "Cannot read the current data" in err and "--where" in err
    err = refused(cli, tmp_path, *both, "--where", "1=1; DROP TABLE x")
    assert "must be one SQL condition" in err
    missing = str(tmp_path / "missing_plan.parquet")
    frame(500, seed=3).drop(columns=["plan"]).to_parquet(missing)
    err = refused(cli, tmp_path, "--baseline", base, "--current", missing)
    assert "'plan' missing from the current data" in err
    typed = str(tmp_path / "typed.parquet")
    frame(500, seed=3).assign(age=lambda f: f["age"].astype(str)).to_parquet(typed)
    err = refused(cli, tmp_path, "--baseline", base, "--current", typed)
    assert "'age' holds number values in the baseline but text" in err
    err = refused(cli, tmp_path, *both, "--by", "age")
    assert "more than 100 distinct values to group by" in err
    err = refused(cli, tmp_path, *both, "--by", "nope")
    assert "no column 'nope' to group by" in err


def test_ks_too_large_for_exact_is_exit_2(cli, pair, tmp_path, monkeypatch):
    from flowship.monitoring.drift import ks

    monkeypatch.setattr(ks, "KS_EXACT_VALUES", 1500)
    base, cur = pair
    args = ["--baseline", base, "--current", cur, "--method", "ks"]
    err = refused(cli, tmp_path, *args, "--ks-exact")
    assert "exact KS test needs all 2,000 values" in err and "Drop --ks-exact" in err
    auto = cli("monitor", "drift", *args, "--json", "-")
    assert auto.exit_code == 1
    age = next(c for c in json.loads(auto.stdout)["columns"] if c["name"] == "age")
    assert age["approximation"]["statistic_error"] < 0.05
    assert "binned approximation" in age["reason"]


def test_performance_bad_input(cli, tmp_path):
    predictions = pd.DataFrame({"id": range(200), "probability": np.linspace(0, 1, 200)})
    actuals = pd.DataFrame({"id": [str(i) for i in range(200)], "y": [0, 1] * 100})
    predictions.to_parquet(tmp_path / "p.parquet")
    actuals.to_parquet(tmp_path / "a.parquet")
    base = ["monitor", "performance", "--predictions", tmp_path / "p.parquet", "--id", "id"]
    clash = cli(*base, "--actuals", tmp_path / "a.parquet")
    assert clash.exit_code == 2, clash.stderr
    assert "'id' holds number values in the predictions but text values" in clash.stderr
    actuals.assign(id=range(200)).to_parquet(tmp_path / "a.parquet")
    empty = cli(*base, "--actuals", tmp_path / "a.parquet", "--where", "probability > 2")
    assert empty.exit_code == 2 and "no rows matching --where" in empty.stderr
    ok = cli(*base, "--actuals", tmp_path / "a.parquet", "--where", "id < 100", "--json", "-")
    assert ok.exit_code in (0, 1), ok.stderr
    assert json.loads(ok.stdout)["n_predictions"] == 100


def test_monitor_file_takes_where_by_and_engine(tmp_path, frame):
    from flowship.errors import ConfigError
    from flowship.monitoring import run_monitor_file

    data = frame(2000, seed=1)
    data["period"] = ["old"] * 1000 + ["new"] * 1000
    data["team"] = ["x", "y"] * 1000
    data.loc[1000:, "age"] += 12
    data.to_parquet(tmp_path / "all.parquet")
    spec = tmp_path / "monitor.yaml"
    spec.write_text(
        "kind: monitor\nname: windows\ndrift:\n  baseline: all.parquet\n"
        "  baseline_where: \"period = 'old'\"\n  current: all.parquet\n"
        "  where: \"period = 'new'\"\n  by: team\n  engine: local\n"
        "  columns: [age, monetary, plan]\n"
    )
    result = run_monitor_file(spec)
    report = result.reports["drift"]
    assert report["by"] == "team" and len(report["groups"]) == 2
    assert set(report["drifted_columns"]) == {"team=x/age", "team=y/age"}
    assert report["current"].endswith("where period = 'new'")
    spec.write_text(spec.read_text().replace("engine: local", "engine: gpu"))
    with pytest.raises(ConfigError, match="drift.engine"):
        run_monitor_file(spec)


def test_progress_is_silent_when_piped(capsys):
    from flowship.cli._progress import rows_progress

    with rows_progress("drift") as on_rows:
        assert on_rows is None  # pytest captures stderr: not a terminal
    assert capsys.readouterr().err == ""


def test_progress_counts_rows_of_every_pass(frame):
    seen = []
    check_drift(frame(3000, seed=1), frame(2000, seed=2), on_rows=seen.append)
    # baseline profile (3000), current tally (2000); small columns need no second pass
    assert sum(seen) == 5000


def test_direct_parquet_read_and_duckdb_give_the_same_report(tmp_path):
    """A single Parquet file with no --where is read by pyarrow with text columns as
    Parquet's dictionaries; the same file through DuckDB (any --where) must give the
    same report, whatever the column types."""
    import decimal

    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)

    def side(n: int, shift: float) -> pa.Table:
        ints = rng.integers(0, 1000, n).astype(float) + shift * 100
        return pa.table(
            {
                "x": rng.normal(shift, 1, n),
                "ints": pa.array([None if i % 7 == 0 else int(v) for i, v in enumerate(ints)]),
                "text": pa.array(
                    [None if i % 5 == 0 else f"v{i % (3 + int(shift))}" for i in range(n)]
                ),  # fmt: skip
                "codes": pa.array(rng.integers(0, 4, n), pa.int16()),
                "flag": pa.array(rng.random(n) < 0.3 + shift / 10),
                "amount": pa.array([decimal.Decimal(f"{v:.2f}") for v in rng.gamma(2, 3, n)]),
                "plan": pa.array(rng.choice(["a", "b", "c"], n)).dictionary_encode(),
            }
        )

    pq.write_table(side(3000, 0.0), tmp_path / "b.parquet", row_group_size=1000)
    pq.write_table(side(2500, 1.0), tmp_path / "c.parquet", row_group_size=700)
    base, cur = str(tmp_path / "b.parquet"), str(tmp_path / "c.parquet")
    direct = check_drift(base, cur).to_dict()
    via_duckdb = check_drift(
        open_source(base, role="baseline", where="TRUE"),
        open_source(cur, role="current", where="TRUE"),
    ).to_dict()
    for report in (direct, via_duckdb):
        report.pop("created_at")
    assert direct["drifted_columns"]  # something to compare
    assert direct == via_duckdb
