"""resolve_ref: every reference form, and every way one can be wrong."""

from __future__ import annotations

import pytest

from flowship.errors import ModelNotFound, NotFound, UsageError, VersionNotFound
from flowship.predict import resolve_ref


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("models:/lr/1", "1"),
        ("models:/lr/2", "2"),
        ("models:/lr@production", "1"),
        ("models:/lr@staging", "2"),
        ("models:/lr/Production", "1"),
        ("models:/lr/production", "1"),
        ("models:/lr/Staging", "2"),
        ("models:/lr/latest", "2"),
    ],
)
def test_registry_refs_resolve_to_a_pinned_version(store, ref, version):
    resolved = resolve_ref(ref)
    assert resolved.ref == ref
    assert resolved.model_name == "lr"
    assert resolved.model_version == version
    assert resolved.uri == f"models:/lr/{version}"
    assert resolved.run_id == store.run_ids["lr" if version == "1" else "lr2"]


def test_runs_ref_keeps_its_run(store):
    run_id = store.run_ids["gb"]
    resolved = resolve_ref(f"runs:/{run_id}/model")
    assert (resolved.uri, resolved.run_id, resolved.model_name) == (
        f"runs:/{run_id}/model",
        run_id,
        None,
    )


def test_local_directory(store):
    path = store.dirs["lr"]
    assert resolve_ref(str(path)).uri == str(path.resolve())
    assert resolve_ref(path.as_uri()).uri == str(path.resolve())


def test_unknown_model(store):
    with pytest.raises(ModelNotFound) as info:
        resolve_ref("models:/nope/1")
    assert info.value.message == "Model 'nope' is not registered."
    for ref in ("models:/nope@production", "models:/nope/Production", "models:/nope/latest"):
        with pytest.raises(ModelNotFound):
            resolve_ref(ref)


def test_unknown_version(store):
    with pytest.raises(VersionNotFound) as info:
        resolve_ref("models:/lr/99")
    assert info.value.message == "Model 'lr' has no version 99."
    assert info.value.hint == "List its versions with: flowship versions lr"


def test_unknown_alias(store):
    with pytest.raises(VersionNotFound) as info:
        resolve_ref("models:/lr@canary")
    assert info.value.message == "Model 'lr' has no version with alias 'canary'."
    assert "flowship promote lr VERSION --to canary" in info.value.hint


def test_empty_stage(store):
    with pytest.raises(VersionNotFound) as info:
        resolve_ref("models:/lr/Archived")
    assert info.value.message == "Model 'lr' has no version in stage Archived."


def test_unknown_run(store):
    with pytest.raises(NotFound) as info:
        resolve_ref("runs:/0123456789abcdef/model")
    assert info.value.message == "Run '0123456789abcdef' does not exist in the tracking store."


def test_missing_directory(tmp_path):
    with pytest.raises(NotFound) as info:
        resolve_ref(str(tmp_path / "nothing"))
    assert info.value.message.startswith("No MLflow model at ")
    assert info.value.message.endswith("(no MLmodel file there).")


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "   ",
        "models:/",
        "models:/lr",
        "models:/lr/",
        "models:/lr/1/2",
        "models:/@production",
        "models:/lr@",
        "models:/lr/Prod",
        "runs:/",
        "runs:/abc",
        "s3://bucket/model",
        "models:lr/1",
    ],
)
def test_malformed_refs_say_which_forms_work(store, ref):
    with pytest.raises(UsageError) as info:
        resolve_ref(ref)
    assert "models:/NAME@alias" in (info.value.hint or "") or "runs:/RUN_ID" in (
        info.value.hint or ""
    )


def test_resolving_downloads_nothing(store, flowship_home):
    resolve_ref("models:/lr@production")
    assert not (flowship_home / "cache").exists()
