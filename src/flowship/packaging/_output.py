"""Writing generated artefacts without clobbering anyone's files, and all or nothing.

A generated folder carries a marker file naming the generator. The target may be
missing, empty, or a folder the same generator wrote before (it is then replaced as a
whole); anything else is refused before any work is done. Files are written to a hidden
sibling folder and renamed into place, so a failure leaves nothing behind and a reader
never sees half a folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowship.errors import UsageError

MARKER = ".flowship-generated.json"


def check_folder(out: Path, kind: str) -> None:
    """Refuse ``out`` unless it is missing, empty, or an earlier ``kind`` output."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(
            f"The output {out} exists and is not a folder.", "Pass a new folder with -o."
        )
    if not any(out.iterdir()):
        return
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"The output folder {out} exists and was not written by flowship; nothing was written.",
            "Pass a new or empty folder with -o (flowship replaces only its own output).",
        ) from None
    if marker.get("kind") != kind:
        raise UsageError(
            f"The output folder {out} holds flowship's {marker.get('kind')!r} output, "
            f"not {kind!r}; nothing was written.",
            "Pass another folder with -o.",
        )


def write_folder(
    out: Path, kind: str, fill: Callable[[Path], None], *, about: dict[str, Any]
) -> Path:
    """Run ``fill(staging)`` and move the result to ``out`` (checked first, replaced whole)."""
    out = Path(out).absolute()
    check_folder(out, kind)
    anchor = out.parent
    while not anchor.exists():  # stage on the same file system as the target
        anchor = anchor.parent
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=anchor))
    try:
        fill(staging)
        _readable(staging)
        (staging / MARKER).write_text(json.dumps({"kind": kind, **about}, indent=2) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _readable(folder: Path) -> None:
    """Folders 0755 and files 0644 (mkdtemp and the model cache make 0700 folders): a
    build context's files must be readable by the image's non-root user, and generated
    manifests by whoever applies them."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def check_file(out: Path, *, ours: Callable[[Path], bool]) -> None:
    """Refuse ``out`` if it is a folder, an existing file flowship did not write
    (``ours``), or in a folder that does not exist."""
    out = Path(out).absolute()
    if out.is_dir():
        raise UsageError(f"The output {out} is a folder.", "Pass a file name with -o.")
    if out.exists() and not ours(out):
        raise UsageError(
            f"The output {out} exists and was not written by flowship; nothing was written.",
            "Pass a new file name with -o (flowship replaces only its own output).",
        )
    if not out.parent.is_dir():
        raise UsageError(
            f"The folder {out.parent} does not exist.", "Create it first, or pass another -o."
        )


def write_file(out: Path, data: bytes, *, ours: Callable[[Path], bool]) -> Path:
    """Write ``data`` to ``out`` (checked by ``check_file``) through a temporary file and
    a rename."""
    out = Path(out).absolute()
    check_file(out, ours=ours)
    fd, staging = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staging, out)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return out
