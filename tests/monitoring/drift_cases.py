"""The drift cases of the existing tests, as data: the parity test runs each through the
streaming implementation and compares with what the in-memory implementation reported
(``data/drift_golden.json``, written by ``python -m tests.monitoring.drift_cases`` at
commit dfb9a56, the last one that read whole frames into pandas)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.monitoring.conftest import frame

GOLDEN = Path(__file__).parent / "data" / "drift_golden.json"


def _missing(side: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, cur = frame(1000, seed=1), frame(1000, seed=2)
    (ref if side == "baseline" else cur)["age"] = np.nan
    return ref, cur


def _missing_jump() -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, cur = frame(5000, seed=1), frame(5000, seed=2)
    cur.loc[cur.sample(frac=0.4, random_state=0).index, "monetary"] = np.nan
    return ref, cur


def _constant(value: Any, other: Any, changed: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, cur = frame(1000, seed=1), frame(1000, seed=2)
    ref["const"] = value
    cur["const"] = value
    if changed:
        cur.loc[:9, "const"] = other
    return ref, cur


def _codes() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"five": rng.integers(0, 5, 2000), "six": rng.integers(0, 6, 2000)})
    return ref, ref.sample(frac=1, random_state=1).reset_index(drop=True)


def _predictions() -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, cur = frame(2000, seed=1), frame(2000, seed=2)
    ref["probability"], cur["probability"] = np.linspace(0, 1, 2000), np.linspace(0.5, 1, 2000)
    return ref, cur


def _ks_seed() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=3000) for i in range(5)})
    cur = pd.DataFrame({f"f{i}": rng.normal(i * 0.03, 1, size=2500) for i in range(5)})
    return ref, cur


def _no_shift(seed: int, n_ref: int, n_cur: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def sample(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(size=n),
                "b": rng.lognormal(size=n),
                "c": rng.choice(list("abcdefghij"), n),
            }
        )

    return sample(n_ref), sample(n_cur)


def _pair(a: dict, b: dict) -> Callable[[], tuple[pd.DataFrame, pd.DataFrame]]:
    return lambda: (frame(**a), frame(**b))


# name -> (make the two frames, check_drift keyword arguments)
CASES: dict[str, tuple[Callable[[], tuple[pd.DataFrame, pd.DataFrame]], dict[str, Any]]] = {
    "real_shifts": (
        _pair({"n": 5000, "seed": 1}, {"n": 5000, "seed": 2, "age_shift": 6, "new_plan": 0.3}),
        {},
    ),
    "cli_files": (
        _pair({"n": 3000, "seed": 1}, {"n": 3000, "seed": 2, "age_shift": 8, "new_plan": 0.3}),
        {},
    ),
    "same_distribution": (_pair({"n": 3000, "seed": 5}, {"n": 2000, "seed": 6}), {}),
    "warn": (_pair({"n": 20000, "seed": 1}, {"n": 20000, "seed": 2, "age_shift": 3.5}), {}),
    "dataset_share": (
        _pair({"n": 4000, "seed": 1}, {"n": 4000, "seed": 2, "age_shift": 8}),
        {"drift_share": 0.25},
    ),
    "too_few_rows": (_pair({"n": 1000, "seed": 1}, {"n": 49, "seed": 2, "age_shift": 30}), {}),
    "missing_baseline": (lambda: _missing("baseline"), {}),
    "missing_current": (lambda: _missing("current"), {}),
    "missing_jump": (_missing_jump, {}),
    "constant_int_same": (lambda: _constant(7, 8, False), {}),
    "constant_int_changed": (lambda: _constant(7, 8, True), {}),
    "constant_text_changed": (lambda: _constant("EUR", "USD", True), {}),
    "codes": (_codes, {}),
    "codes_override": (_codes, {"column_types": {"five": "numerical", "six": "categorical"}}),
    "predictions": (_predictions, {}),
    "ks_seed": (_ks_seed, {"method": "ks"}),
    "ks_frame": (
        _pair({"n": 3000, "seed": 1}, {"n": 3000, "seed": 2, "age_shift": 8, "new_plan": 0.3}),
        {"method": "ks"},
    ),
    "ks_missing": (_missing_jump, {"method": "ks"}),
    **{
        f"no_shift_{seed}_{n_ref}_{n_cur}": (
            (lambda s=seed, a=n_ref, b=n_cur: _no_shift(s, a, b)),
            {},
        )
        for seed in (0, 7, 13)
        for n_ref, n_cur in ((300, 60), (2000, 2000))
    },
}


def main() -> None:
    from flowship.monitoring.drift import check_drift

    golden = {}
    for name, (make, params) in CASES.items():
        ref, cur = make()
        report = check_drift(ref, cur, **params).to_dict()
        report.pop("created_at")
        golden[name] = report
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(golden)} cases to {GOLDEN}")


if __name__ == "__main__":
    main()
