"""One parser reads model refs for both the MLflow path (refs) and the tables' fast path
(registry_db), and the two modules no longer import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flowship.predict
from flowship.errors import UsageError
from flowship.predict.ref_syntax import RegistryRef, parse_registry_ref
from flowship.predict.registry_db import _parse

PREDICT = Path(flowship.predict.__file__).parent


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("models:/Churn/3", RegistryRef("Churn", "version", "3")),
        ("models:/Churn/production", RegistryRef("Churn", "stage", "Production")),
        ("models:/Churn/LATEST", RegistryRef("Churn", "latest", "")),
        ("models:/Churn@champion", RegistryRef("Churn", "alias", "champion")),
        ("models:/Churn Model@v-2", RegistryRef("Churn Model", "alias", "v-2")),
    ],
)
def test_registry_refs_are_read_once(ref, expected):
    assert parse_registry_ref(ref) == expected
    assert _parse(ref) == (expected.name, expected.kind, expected.value)


@pytest.mark.parametrize(
    "ref",
    ["models:/", "models:/Churn", "models:/Churn/", "models:/Churn/1/2", "models:/@a",
     "models:/Churn@", "models:/a/b@c", "models:/Churn/Prod", "runs:/x/model"],
)  # fmt: skip
def test_malformed_refs_are_refused_by_both(ref):
    with pytest.raises(UsageError, match="Malformed model reference"):
        parse_registry_ref(ref)
    assert _parse(ref) is None


def test_the_fast_path_leaves_to_mlflow_what_mlflow_refuses():
    assert _parse("models:/Churn@latest") == ("Churn", "latest_alias", "")
    assert _parse("models:/Churn@bad alias!") is None
    assert _parse("models:/a:b/1") is None


def _imports(module: str) -> set[str]:
    tree = ast.parse((PREDICT / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):  # function-level imports count too: a cycle is a cycle
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_refs_and_registry_db_do_not_import_each_other_both_ways():
    assert "flowship.predict.registry_db" in _imports("refs")  # the fast path, lazily
    assert "flowship.predict.refs" not in _imports("registry_db")
