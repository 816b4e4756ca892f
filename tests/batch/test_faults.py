"""A real `flowship score` process killed with SIGKILL mid-run, and a real input far
larger than the memory the job is allowed to grow by."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flowship.batch import load_job, run_job
from flowship.errors import ConcurrentChange
from tests.batch.conftest import customers, write_parquet
from tests.batch.test_local import read_delta

FLOWSHIP = str(Path(sys.executable).with_name("flowship"))


def _env(churn, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FLOWSHIP_HOME=str(home), MLFLOW_TRACKING_URI=churn.tracking_uri)
    return env


def _score(*args: object) -> list[str]:
    return [FLOWSHIP, "score", "--model", "models:/Churn@production", "--id", "customer_id",
            *(str(a) for a in args)]  # fmt: skip


def _big_parquet(path: Path, rows: int, *, extra_columns: int = 0, chunk: int = 250_000) -> int:
    """Written in chunks so the test itself stays small; returns the Arrow size in bytes."""
    writer, size = None, 0
    for start in range(0, rows, chunk):
        frame = customers(min(chunk, rows - start), seed=start, start=start)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for i in range(extra_columns):
            table = table.append_column(f"extra_{i}", pa.array(np.full(table.num_rows, i * 1.5)))
        size += table.nbytes
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=65_536)
    assert writer is not None
    writer.close()
    return size


@pytest.mark.slow
def test_sigkill_mid_run_leaves_nothing_and_rerun_scores_each_id_once(churn, tmp_path):
    home = tmp_path / "home"
    env = _env(churn, home)
    out = tmp_path / "predictions"
    small = write_parquet(tmp_path / "small.parquet", customers(100))
    done = subprocess.run(_score("--input", small, "--output", out, "--incremental"),
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    big = tmp_path / "big.parquet"
    _big_parquet(big, 600_000)
    job = tmp_path / "job.yaml"
    job.write_text(
        "model: models:/Churn@production\nid: customer_id\nincremental: true\n"
        f"input: {big}\nbatch_size: 2000\n"
        f"output:\n  path: {out}\n  rows_per_file: 4000\n"
    )
    proc = subprocess.Popen([FLOWSHIP, "score", str(job)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    staged: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None and len(staged) < 3:
        staged = [p for p in out.rglob("part-*.parquet") if p.stat().st_size]
        time.sleep(0.02)
        staged = staged if len(staged) > 1 else []
    assert proc.poll() is None, "the run finished before it could be killed: use more rows"
    # While it runs, a second run on the same output is refused (it would score the same ids).
    with pytest.raises(ConcurrentChange, match="is still writing to"):
        run_job(load_job(job))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert DeltaTable(str(out)).version() == 0  # the killed run committed nothing
    assert read_delta(str(out)).num_rows == 100
    files_before = {p.name for p in out.rglob("part-*.parquet")}
    assert len(files_before) > 2  # its staged files are there, invisible

    rerun = subprocess.run([FLOWSHIP, "score", str(job)], env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    ids = read_delta(str(out)).column("customer_id").to_numpy()
    assert len(ids) == 600_000 and len(np.unique(ids)) == 600_000
    committed = {Path(u).name for u in DeltaTable(str(out)).file_uris()}
    leftovers = {p.name for p in out.rglob("part-*.parquet")} - committed
    assert not leftovers, "orphaned staged files of the killed run were not cleaned up"
    runs = subprocess.run([FLOWSHIP, "runs", "--json"], env=env, capture_output=True, text=True)
    statuses = sorted(r["status"] for r in __import__("json").loads(runs.stdout))
    assert statuses == ["failed", "succeeded", "succeeded"]  # the refused run never started


def _peak_rss_mb(args: list[str], env: dict[str, str]) -> float:
    """Peak RSS of one child process, measured in a fresh helper so that earlier
    children do not count (RUSAGE_CHILDREN keeps the maximum over all of them)."""
    code = (
        "import resource, subprocess, sys;"
        f"r = subprocess.run({args!r}, capture_output=True, text=True);"
        "sys.stderr.write(r.stderr);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024);"
        "sys.exit(r.returncode)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


@pytest.mark.slow
def test_memory_stays_bounded_on_an_input_far_larger_than_it(churn, tmp_path):
    env = _env(churn, tmp_path / "home")
    # The baseline spans a few batches, so that what is per batch (read-ahead, write-behind,
    # ONNX Runtime's arena) is in both figures and the difference is what grows with input.
    small = tmp_path / "small.parquet"
    _big_parquet(small, 300_000, extra_columns=14)
    big = tmp_path / "big.parquet"
    arrow_bytes = _big_parquet(big, 2_000_000, extra_columns=14)
    baseline = _peak_rss_mb(_score("--input", small, "--output", tmp_path / "o1"), env)
    peak = _peak_rss_mb(_score("--input", big, "--output", tmp_path / "o2"), env)
    input_mb = arrow_bytes / 2**20
    growth = peak - baseline
    # The whole input in memory would be input_mb (the seed approach needs more: pandas
    # copies); streaming grows by the id set (8 bytes an id) plus a few batches.
    assert growth < input_mb / 3, f"grew {growth:.0f} MB scoring a {input_mb:.0f} MB input"
    assert read_delta(str(tmp_path / "o2")).num_rows == 2_000_000
