"""Faults in the middle of a lifecycle change lose nothing.

MLflow's real SQLite store is made to refuse one chosen write (a trigger aborts it),
or the promoting process is killed between two writes. Afterwards the aliases, the
native stages, the tags and the history are exactly what they were, or, when every
MLflow write had landed, the change is recorded as flowship's own, not as external.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from flowship.errors import ChangeFailed
from flowship.registry import history, list_versions, promote, rollback

M = "ChurnPredictor"


def _mlflow_db(home):
    return home / "mlflow.db"


def _mlflow_rows(home) -> dict[str, list]:
    """Every stage signal MLflow holds for the model, read from its tables."""
    with closing(sqlite3.connect(_mlflow_db(home))) as conn:
        return {
            "aliases": sorted(
                conn.execute(
                    "SELECT alias, version FROM registered_model_aliases WHERE name=?", (M,)
                )
            ),
            "tags": sorted(
                conn.execute(
                    "SELECT version, key, value FROM model_version_tags WHERE name=?", (M,)
                )
            ),
            "stages": sorted(
                conn.execute("SELECT version, current_stage FROM model_versions WHERE name=?", (M,))
            ),
        }


def _refuse(home, table: str, ops: tuple[str, ...], when: str) -> None:
    """Make MLflow's database abort the writes of ``table`` matching ``when`` (``{r}``
    is the row: NEW for inserts and updates, OLD for deletes)."""
    with closing(sqlite3.connect(_mlflow_db(home))) as conn:
        for op in ops:
            row = "OLD" if op == "DELETE" else "NEW"
            conn.execute(
                f"CREATE TRIGGER fault_{table}_{op.lower()} BEFORE {op} ON {table} "
                f"WHEN {when.format(r=row)} BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
            )
        conn.commit()


def _allow(home) -> None:
    with closing(sqlite3.connect(_mlflow_db(home))) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for name in names:
            if name.startswith("fault_"):
                conn.execute(f"DROP TRIGGER {name}")
        conn.commit()


def _alias(alias, version):
    ops = ("INSERT", "UPDATE")
    return "registered_model_aliases", ops, f"{{r}}.alias='{alias}' AND {{r}}.version={version}"


def _unalias(alias, version):
    return (
        "registered_model_aliases",
        ("DELETE",),
        f"{{r}}.alias='{alias}' AND {{r}}.version={version}",
    )


def _tag(stage, version):
    when = f"{{r}}.key='flowship.stage' AND {{r}}.value='{stage}' AND {{r}}.version={version}"
    return "model_version_tags", ("INSERT", "UPDATE"), when


def _native(stage, version):
    when = f"NEW.current_stage='{stage}' AND OLD.current_stage<>'{stage}' AND NEW.version={version}"
    return "model_versions", ("UPDATE",), when


# Version 1 in Production, version 2 in Staging; promoting 2 to Production writes:
PROMOTION_STEPS = {
    "moving alias 'production' to version 2": _alias("production", 2),
    "removing alias 'staging' from version 2": _unalias("staging", 2),
    "setting tag flowship.stage=Production on version 2": _tag("Production", 2),
    "setting the MLflow stage of version 2 to Production": _native("Production", 2),
    "setting tag flowship.stage=Archived on version 1": _tag("Archived", 1),
    "setting the MLflow stage of version 1 to Archived": _native("Archived", 1),
}

# Version 2 in Production, version 1 archived after it; rolling back writes:
ROLLBACK_STEPS = {
    "moving alias 'production' to version 1": _alias("production", 1),
    "setting tag flowship.stage=Production on version 1": _tag("Production", 1),
    "setting the MLflow stage of version 1 to Production": _native("Production", 1),
    "setting tag flowship.stage=Archived on version 2": _tag("Archived", 2),
    "setting the MLflow stage of version 2 to Archived": _native("Archived", 2),
}


def _history():
    return [e.to_dict() for e in history(M)]


def _stages():
    return {v.version: v.stage for v in list_versions(M)}


@pytest.fixture
def one_in_production_one_staged(register_two, flowship_home):
    register_two()
    promote(M, 1, "production")
    promote(M, 2, "staging")
    return flowship_home


@pytest.fixture
def rolled_forward(register_two, flowship_home):
    register_two()
    promote(M, 1, "production")
    promote(M, 2, "production")
    return flowship_home


@pytest.mark.parametrize("step", list(PROMOTION_STEPS))
def test_a_promotion_refused_at_any_write_changes_nothing(one_in_production_one_staged, step):
    home = one_in_production_one_staged
    events_before, rows_before = _history(), _mlflow_rows(home)
    _refuse(home, *PROMOTION_STEPS[step])

    with pytest.raises(ChangeFailed) as failed:
        promote(M, 2, "production", reason="release 2")
    assert failed.value.step == step
    assert f"Promoting {M} version 2 to Production failed: MLflow refused {step}" in str(
        failed.value
    )
    assert "injected fault" in str(failed.value)
    assert "Nothing was changed" in str(failed.value)

    assert _mlflow_rows(home) == rows_before  # aliases, tags and native stages
    assert _history() == events_before  # nothing recorded, nothing found "external"
    assert _mlflow_rows(home) == rows_before  # and that look repaired nothing

    _allow(home)
    promote(M, 2, "production", reason="release 2")
    assert _stages() == {"1": "Archived", "2": "Production"}


@pytest.mark.parametrize("step", list(ROLLBACK_STEPS))
def test_a_rollback_refused_at_any_write_changes_nothing(rolled_forward, step):
    home = rolled_forward
    events_before, rows_before = _history(), _mlflow_rows(home)
    _refuse(home, *ROLLBACK_STEPS[step])

    with pytest.raises(ChangeFailed) as failed:
        rollback(M)
    assert failed.value.step == step
    assert f"Rolling {M} back to version 1 failed: MLflow refused {step}" in str(failed.value)

    assert _mlflow_rows(home) == rows_before
    assert _history() == events_before
    assert _mlflow_rows(home) == rows_before

    _allow(home)
    rollback(M)
    assert _stages() == {"1": "Production", "2": "Archived"}


def test_the_cli_says_which_write_failed(one_in_production_one_staged, cli):
    home = one_in_production_one_staged
    rows_before = _mlflow_rows(home)
    _refuse(home, *_tag("Archived", 1))
    done = cli("promote", M, "2", "--to", "production")
    assert done.exit_code == 2
    assert "MLflow refused setting tag flowship.stage=Archived on version 1" in done.stderr
    assert "Nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert _mlflow_rows(home) == rows_before


def test_an_undo_that_fails_too_is_finished_by_the_next_look(one_in_production_one_staged):
    """The archive write fails, and so does moving @production back: the change stays
    pending, and the next command on the model puts everything back."""
    home = one_in_production_one_staged
    events_before, rows_before = _history(), _mlflow_rows(home)
    _refuse(home, *_tag("Archived", 1))
    with closing(sqlite3.connect(_mlflow_db(home))) as conn:
        conn.execute(
            "CREATE TRIGGER fault_undo BEFORE UPDATE ON registered_model_aliases "
            "WHEN NEW.alias='production' AND NEW.version=1 "
            "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )
        conn.commit()

    with pytest.raises(ChangeFailed) as failed:
        promote(M, 2, "production")
    assert "Putting back what it had written failed too" in str(failed.value)
    assert f"flowship history {M}" in str(failed.value)
    assert _mlflow_rows(home) != rows_before

    _allow(home)
    assert _history() == events_before
    assert _mlflow_rows(home) == rows_before


# A promotion in another process that kills itself (SIGKILL) after a number of MLflow
# writes: 0 = after recording its intent, before any write; 6 = after every write,
# before marking the change done.
KILLED_PROMOTION = """
import os, signal, sys
from flowship import _mlflow
from flowship.registry import promote

client, limit, count = _mlflow.client(), int(sys.argv[1]), [0]

def counted(method):
    def call(*args, **kwargs):
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        result = method(*args, **kwargs)
        count[0] += 1
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

for write in ("set_registered_model_alias", "delete_registered_model_alias",
              "set_model_version_tag", "delete_model_version_tag",
              "transition_model_version_stage"):
    setattr(client, write, counted(getattr(client, write)))
promote("ChurnPredictor", 2, "production", reason="release 2", require_signature=True)
print("not killed")
"""


@pytest.mark.parametrize("writes", [0, 3, 6])
def test_a_promotion_killed_between_writes_is_settled_as_its_own(
    one_in_production_one_staged, writes
):
    _kill_and_settle(one_in_production_one_staged, writes)


@pytest.mark.postgres
def test_a_killed_promotion_frees_the_lock_and_is_settled_on_postgresql(
    pg_url, register_two, flowship_home
):
    register_two()  # MLflow's store; the state database is PostgreSQL
    promote(M, 1, "production")
    promote(M, 2, "staging")
    _kill_and_settle(flowship_home, 6)


def _kill_and_settle(home, writes: int) -> None:
    events_before, rows_before = _history(), _mlflow_rows(home)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_PROMOTION, str(writes)],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr[-2000:]

    events_after = _history()  # takes the lock the dead process held
    assert all(e["action"] != "external" for e in events_after)
    if writes < len(PROMOTION_STEPS):  # half-way: put back, as if never tried
        assert events_after == events_before
        assert _mlflow_rows(home) == rows_before
        assert _stages() == {"1": "Production", "2": "Staging"}
        return
    # Every write landed: the promotion happened, recorded with its actor, reason, gates.
    assert events_after[: len(events_before)] == events_before
    new = events_after[len(events_before) :]
    assert [(e["version"], e["from_stage"], e["to_stage"], e["action"]) for e in new] == [
        ("2", "Staging", "Production", "promote"),
        ("1", "Production", "Archived", "promote"),
    ]
    assert {e["actor"] for e in new} == {"tester"}
    assert new[0]["reason"] == "release 2"
    assert [g["name"] for g in new[0]["gates"]] == ["signature present"]
    assert _stages() == {"1": "Archived", "2": "Production"}
