"""Native code: the forest kernel is built with the package, never at run time, and no
library but the one the build recorded is ever loaded."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from flowship.predict import Predictor, _forest

FEATURES = ["age", "tenure", "recency", "frequency", "monetary"]
ROOT = Path(__file__).resolve().parents[2]
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

# A library that announces being loaded (its constructor writes a file), with a walk
# that adds nothing: loaded in flowship's place, it would run and score every row 0.
FOREIGN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
__attribute__((constructor)) static void announce(void) {
    const char *path = getenv("FOREIGN_MARKER");
    if (path) { FILE *f = fopen(path, "w"); if (f) { fputs("loaded", f); fclose(f); } }
}
void flowship_walk(const float *x, int64_t n, int64_t nf, int32_t nan, const int32_t *r,
                   const int32_t *d, int64_t t, const void *nodes, const double *v, int64_t k,
                   double *out) {}
"""


@pytest.fixture
def foreign(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(a foreign shared library, the file it writes when something loads it)."""
    source = tmp_path / "foreign.c"
    source.write_text(FOREIGN)
    library = tmp_path / "foreign.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    marker = tmp_path / "foreign-was-loaded"
    monkeypatch.setenv("FOREIGN_MARKER", str(marker))
    return library, marker


@pytest.fixture
def fresh_kernel(monkeypatch):
    """As in a new process: the kernel is looked up again."""
    monkeypatch.setattr(_forest, "_kernel", None)


def _expected(store, ref: str) -> np.ndarray:
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(ref)
    return model.predict(store.data[FEATURES])


def _rows(store) -> dict[str, np.ndarray]:
    return {c: store.data[c].to_numpy() for c in FEATURES}


@needs_cc
def test_editable_install_built_the_kernel_into_the_package():
    """``make test`` installs with ``pip install -e``, whose build runs hatch_build.py."""
    assert _forest.LIBRARY.parent == Path(_forest.__file__).parent
    assert not isinstance(_forest.load_kernel(_forest.LIBRARY), str)


def test_no_compiler_is_run_when_scoring(flowship_home, fresh_kernel, monkeypatch):
    """With no compiler reachable the installed kernel still scores, and nothing is
    compiled into FLOWSHIP_HOME."""
    from sklearn.ensemble import RandomForestClassifier

    if isinstance(_forest.load_kernel(_forest.LIBRARY), str):
        pytest.skip("this install has no kernel (no C compiler when it was installed)")
    monkeypatch.setenv("CC", "false")
    monkeypatch.setenv("PATH", "/nonexistent")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    model = RandomForestClassifier(10, random_state=0).fit(x, x[:, 0] > 0)
    forest, why = _forest.compile_forest(model, "predict")
    assert forest is not None, why
    np.testing.assert_array_equal(forest(x), model.predict(x))
    assert not (flowship_home / "cache" / "kernels").exists()


@needs_cc
def test_a_library_planted_in_the_old_cache_is_never_loaded(
    store, flowship_home, fresh_kernel, foreign
):
    """Before, the kernel came from $FLOWSHIP_HOME/cache/kernels/forest-<digest>.so,
    compiled there or found there: a library copied over it ran inside flowship."""
    library, marker = foreign
    source = (Path(_forest.__file__).parent / "_forest.c").read_bytes()
    digest = hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]
    planted = flowship_home / "cache" / "kernels" / f"forest-{digest}.so"
    planted.parent.mkdir(parents=True)
    shutil.copy(library, planted)
    p = Predictor.load("models:/rf/1")
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/rf/1"))
    assert not marker.exists()


@needs_cc
def test_a_foreign_library_under_the_kernels_name_is_refused(
    store, tmp_path, fresh_kernel, foreign, monkeypatch, caplog
):
    """A library swapped in beside the build record is refused (its SHA-256 differs from
    the one the build recorded); forests then go to ONNX, with the right answers."""
    library, marker = foreign
    folder = tmp_path / "package"
    folder.mkdir()
    planted = folder / _forest.LIBRARY.name
    shutil.copy(library, planted)
    shutil.copy(ROOT / "src" / "flowship" / "predict" / "_forest.c", folder / "_forest.c")
    record = {
        "source_sha256": hashlib.sha256((folder / "_forest.c").read_bytes()).hexdigest(),
        "library_sha256": "0" * 64,  # what the build recorded: not this library
    }
    (folder / "_forest_kernel.json").write_text(__import__("json").dumps(record))
    monkeypatch.setattr(_forest, "LIBRARY", planted)
    monkeypatch.setattr(_forest, "_PACKAGE", folder)
    why = _forest.load_kernel(planted)
    assert isinstance(why, str) and "is not the library flowship built" in why
    p = Predictor.load("models:/rf/1")
    assert p.backend != "forest"
    assert "the forest is not compiled" in p.backend_reason
    assert "is not the library flowship built" in p.backend_reason
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/rf/1"))
    assert not marker.exists()


def test_without_a_built_kernel_forests_use_onnx_and_say_why(
    store, tmp_path, fresh_kernel, monkeypatch
):
    """An install made where no C compiler was available has no library."""
    monkeypatch.setattr(_forest, "LIBRARY", tmp_path / "_forest_kernel.so")
    p = Predictor.load("models:/rf/1")
    assert p.backend != "forest"
    assert "was not built when flowship was installed" in p.backend_reason
    np.testing.assert_array_equal(p.predict(_rows(store)), _expected(store, "models:/rf/1"))


@needs_cc
def test_a_kernel_built_from_another_source_is_refused(tmp_path, fresh_kernel, monkeypatch):
    """An editable checkout whose _forest.c changed after the install: reinstall."""
    folder = tmp_path / "package"
    folder.mkdir()
    for name in ("_forest_kernel.so", "_forest_kernel.json"):
        shutil.copy(_forest.LIBRARY.with_name(name), folder / name)
    (folder / "_forest.c").write_text("/* edited */\n")
    monkeypatch.setattr(_forest, "_PACKAGE", folder)
    why = _forest.load_kernel(folder / "_forest_kernel.so")
    assert isinstance(why, str) and "built from another _forest.c" in why


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> zipfile.ZipFile:
    """Build a wheel from a copy of the project (the hook writes into its source tree)."""
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "src",
        project / "src",
        ignore=shutil.ignore_patterns("__pycache__", "_forest_kernel.*"),
    )
    for name in ("pyproject.toml", "hatch_build.py", "README.md"):
        shutil.copy(ROOT / name, project / name)
    out = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.mark.slow
@needs_cc
def test_the_wheel_carries_the_kernel_and_its_record(tmp_path):
    wheel = _build_wheel(tmp_path, {})
    names = wheel.namelist()
    assert "flowship/predict/_forest_kernel.so" in names
    assert "flowship/predict/_forest_kernel.json" in names
    assert not Path(wheel.filename).name.endswith("-none-any.whl")  # a platform wheel


@pytest.mark.slow
def test_a_wheel_built_without_a_compiler_is_pure_python(tmp_path):
    wheel = _build_wheel(tmp_path / "nocc", {"CC": "no-such-compiler"})
    assert not [n for n in wheel.namelist() if "_forest_kernel" in n]
    assert Path(wheel.filename).name.endswith("-py3-none-any.whl")
