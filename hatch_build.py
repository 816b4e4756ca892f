"""Build the forest kernel when the wheel is built (or the package installed, editable too).

The kernel (``src/flowship/predict/_forest.c``) becomes a shared library inside the
package, next to the Python code that loads it with ctypes: installed code is the only
native code flowship runs, and nothing is compiled when a command runs. The library is
written with a manifest of the source and library digests, which the loader checks.

Without a working C compiler the wheel is built without the library (pure Python), and
forests are scored through ONNX Runtime instead; ``Predictor.backend_reason`` says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path("src") / "flowship" / "predict"
SOURCE = PACKAGE / "_forest.c"
LIBRARY = PACKAGE / "_forest_kernel.so"
MANIFEST = PACKAGE / "_forest_kernel.json"


class ForestKernelHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # an sdist ships the source; its wheel build compiles it
        root = Path(self.root)
        library, manifest = root / LIBRARY, root / MANIFEST
        problem = build(root / SOURCE, library, manifest)
        if problem is not None:
            print(f"flowship: forest kernel not built ({problem}); forests will use ONNX")
            return
        # The library is ignored by git, so name it explicitly; it makes the wheel
        # platform-specific.
        build_data["artifacts"] += [LIBRARY.as_posix(), MANIFEST.as_posix()]
        if version != "editable":
            build_data["pure_python"] = False
            build_data["infer_tag"] = True


def build(source: Path, library: Path, manifest: Path) -> str | None:
    """Compile ``source`` into ``library`` and record both digests in ``manifest``; what
    went wrong, or None. A failed build removes any older library, so a stale one is never
    loaded in its place."""
    for stale in (library, manifest):
        stale.unlink(missing_ok=True)
    name = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = shutil.which(name.split()[0])
    if compiler is None:
        return f"no C compiler ({name}) found"
    staging = library.with_name(f".{library.name}.{os.getpid()}")
    command = [compiler, "-O3", "-shared", "-fPIC", "-o", str(staging), str(source)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            return f"{compiler} failed: {lines[0]}"
        os.chmod(staging, 0o755)
        os.replace(staging, library)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{compiler} failed: {exc}"
    finally:
        staging.unlink(missing_ok=True)
    record = {
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "library_sha256": hashlib.sha256(library.read_bytes()).hexdigest(),
    }
    manifest.write_text(json.dumps(record, indent=1) + "\n")
    return None
