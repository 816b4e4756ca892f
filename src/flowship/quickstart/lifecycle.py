"""The lifecycle steps of the quickstart: data, two models, gates, promotion,
rollback, history (see ``flowship.quickstart`` for how steps work)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowship.errors import GateFailed
from flowship.quickstart import Tour
from flowship.quickstart.data import FEATURES, ID, TARGET, churn_frame

GATES_TOML = """\
# Gates for the quickstart's model; see docs/lifecycle.md for every field.
[models.{model}]
evaluation_data = "churn_eval.parquet"
target = "churned"

[models.{model}.staging]
signature = true
metrics = {{ auc = 0.65 }}
checklist = ["input_schema_documented", "output_format_defined"]

[models.{model}.production]
metrics = {{ auc = 0.70, log_loss = 0.60 }}
no_regression = {{ auc = {{ tolerance = 0.005 }} }}
checklist = ["model_performance_validated", "rollback_plan_ready"]
"""


def generate_data(tour: Tour) -> None:
    train = churn_frame(4000, seed=1)
    evaluation = churn_frame(1000, seed=2, first_id=200_000)
    customers = churn_frame(2000, seed=3, first_id=300_000).drop(columns=[TARGET])
    train.to_parquet(tour.train_path, index=False)
    evaluation.to_parquet(tour.eval_path, index=False)
    customers.to_parquet(tour.customers_path, index=False)
    tour.say(
        f"Generated {len(train)} training and {len(evaluation)} evaluation customers with "
        f"the seed's columns ({ID}, {', '.join(FEATURES)}, {TARGET}) and "
        f"{len(customers)} new customers to score, in {tour.workdir}."
    )
    tour.say(
        f"Churn rate {train[TARGET].mean():.0%}: long recency raises it; tenure, frequency "
        "and spend lower it."
    )


def train_and_register(tour: Tour) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from flowship.registry import register_estimator

    train = pd.read_parquet(tour.train_path)
    evaluation = pd.read_parquet(tour.eval_path)
    X, y = train[list(FEATURES)], train[TARGET]
    models = {
        "baseline": (
            "a depth-3 decision tree",
            DecisionTreeClassifier(max_depth=3, random_state=0),
        ),
        "candidate": (
            "a scaled logistic regression",
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        ),
    }
    for role, (label, estimator) in models.items():
        estimator.fit(X, y)
        auc = roc_auc_score(
            evaluation[TARGET], estimator.predict_proba(evaluation[list(FEATURES)])[:, 1]
        )
        info = register_estimator(
            tour.model,
            estimator,
            X.head(5),
            metrics={"val_auc": auc},
            description=f"quickstart {role}: {label}",
        )
        tour.versions[role] = info.version
        tour.say(
            f"Trained {label} (validation AUC {auc:.3f}) and registered it as "
            f"{tour.model} version {info.version}, with its signature, in experiment 'flowship'."
        )


def write_gates(tour: Tour) -> None:
    tour.config_path.write_text(GATES_TOML.format(model=tour.model))
    tour.say(
        f"Wrote {tour.config_path}: before Staging a version needs a signature and AUC >= 0.65; "
        "before Production AUC >= 0.70, log loss <= 0.60, no AUC regression against the "
        "current Production version, and two deployment-checklist items."
    )


def _promote(tour: Tour, role: str, stage: str, **options):
    from flowship.registry import promote

    return promote(tour.model, tour.versions[role], stage, config=str(tour.config_path), **options)


def _show_gates(tour: Tour, results) -> None:
    tour.show(
        None,
        ["result", "gate", "value", "limit"],
        [("pass" if r.passed else "FAIL", r.name, r.value, r.limit) for r in results],
    )


def promote_baseline(tour: Tour) -> None:
    from flowship.registry import PRODUCTION, list_versions

    v1 = tour.versions["baseline"]
    t = _promote(tour, "baseline", "staging")
    _show_gates(tour, t.gates)
    tour.say(f"Version {v1} passed the Staging gates: it is now in Staging (alias @staging).")
    current = next((v.version for v in list_versions(tour.model) if v.stage == PRODUCTION), None)
    confirm = [] if current else ["rollback_plan_ready"]
    t = _promote(tour, "baseline", "production", confirm=confirm)
    _show_gates(tour, t.gates)
    if confirm:
        tour.say(
            "Nothing is in Production yet, so there is nothing to roll back to: the rollback "
            "plan item was confirmed by hand (--confirm rollback_plan_ready)."
        )
    else:
        tour.say(f"Version {current} (from an earlier run) was archived to make room.")
    tour.say(
        f"Version {v1} is in Production: models:/{tour.model}@production, "
        f"models:/{tour.model}/Production and get_latest_versions(stages=['Production']) "
        "all resolve to it."
    )


def promote_candidate(tour: Tour) -> None:
    v1, v2 = tour.versions["baseline"], tour.versions["candidate"]
    _promote(tour, "candidate", "staging")
    tour.say(f"Version {v2} passed the Staging gates and is in Staging.")
    try:
        _promote(tour, "candidate", "production", gates=["auc>=0.95"])
    except GateFailed as refused:
        _show_gates(tour, refused.results)
        tour.say(
            "With an extra command-line gate (--gate 'auc>=0.95') the promotion is refused "
            "and nothing changes; the CLI exits with code 1."
        )
    t = _promote(tour, "candidate", "production")
    _show_gates(tour, t.gates)
    tour.say(
        f"With the gates from flowship.toml version {v2} passes, including no regression "
        f"against version {v1}: it is in Production and version {t.previous} is archived."
    )


def roll_back(tour: Tour) -> None:
    from flowship.registry import rollback

    t = rollback(tour.model, reason="quickstart: pretend the new version misbehaves")
    tour.say(
        f"Rolled back: version {t.version} (the one in Production before, according to the "
        f"history) is back in Production and version {t.previous} is archived."
    )


def show_history(tour: Tour) -> None:
    from flowship.registry import PRODUCTION, history, stage_at

    events = history(tour.model)
    recent = events[-9:]
    tour.show(
        f"History of {tour.model} (last {len(recent)} of {len(events)} changes)",
        ["time (UTC)", "version", "change", "action", "gates"],
        [
            (
                e.at.strftime("%H:%M:%S.%f")[:-3],
                e.version,
                f"{e.from_stage} -> {e.to_stage}",
                e.action,
                f"{sum(g['passed'] for g in e.gates)}/{len(e.gates)} passed" if e.gates else "",
            )
            for e in recent
        ],
    )
    rolled = [e for e in events if e.action == "rollback" and e.to_stage == PRODUCTION]
    if rolled:
        just_before = rolled[-1].at - timedelta(milliseconds=1)
        tour.say(
            f"Just before the rollback at {rolled[-1].at.isoformat(timespec='seconds')} version "
            f"{stage_at(tour.model, just_before)} was in Production; now version "
            f"{stage_at(tour.model, datetime.now(UTC))} is. "
            f"flowship history {tour.model} --at TIME answers that for any time."
        )
