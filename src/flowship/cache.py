"""flowship's file cache under ``$FLOWSHIP_HOME/cache``: private, and every file checked.

The cache holds what flowship unpickles or hands to ONNX Runtime: downloaded model files,
converted ONNX graphs and recorded loads. Whoever can write there can run code inside
``flowship serve`` and ``flowship score``, so:

- the cache directory is made ``0700``; one owned by another user is not used at all
  (the model is loaded without a cache, and a warning says why once); one of ours that
  group or others could write to is emptied first, since anything in it may be planted;
- a cached file is used only when its SHA-256 is the one flowship recorded when it
  wrote the file (``digests`` for a folder, ``write_checked`` / ``read_checked`` for one
  file). A file that differs is refused with a warning and made again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from pathlib import Path

from flowship.config import get_settings

log = logging.getLogger(__name__)

_warned: set[str] = set()


def root() -> Path | None:
    """The private cache directory, created if missing; None when it cannot be trusted."""
    path = get_settings().home_dir / "cache"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        if info.st_uid != os.geteuid():
            return _unusable(
                path,
                f"it belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})",
            )
        if not stat.S_ISDIR(info.st_mode):
            return _unusable(path, "it is not a directory")
        if info.st_mode & 0o022:  # others could have planted files: keep none of them
            _warn_once(
                path,
                f"The cache {path} was writable by group or others; emptied and made private.",
            )
            for entry in path.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        return _unusable(path, str(exc))
    return path


def _unusable(path: Path, why: str) -> None:
    _warn_once(
        path,
        f"The cache {path} is not used: {why}. Models load without it (slower). "
        "Remove it, or point FLOWSHIP_HOME at a directory of your own.",
    )
    return None


def _warn_once(path: Path, message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digests(folder: Path, *, skip: str) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path, except the record ``skip``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative != skip and not path.is_dir():
            found[relative] = file_digest(path)
    return found


def differs(folder: Path, recorded: object, *, skip: str) -> str | None:
    """Which file under ``folder`` is not as recorded (None when all are)."""
    if not isinstance(recorded, dict) or not recorded:
        return "no record of its files"
    try:
        found = digests(folder, skip=skip)
    except OSError as exc:
        return str(exc)
    for name in sorted(set(found) | set(recorded)):
        if name not in recorded:
            return f"{name} was not written by flowship"
        if name not in found:
            return f"{name} is missing"
        if found[name] != recorded[name]:
            return f"{name} differs from the file flowship wrote"
    return None


def write_checked(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with its digest beside it (``NAME.sha256``), each by a
    rename, so a reader sees either a matching pair or a refused one."""
    for target, content in ((path, data), (_record(path), digest(data).encode())):
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            staging.write_bytes(content)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)


def read_checked(path: Path) -> bytes | None:
    """The bytes of ``path`` if they are what ``write_checked`` wrote, else None (with a
    warning when the file is there but is not flowship's)."""
    try:
        data = path.read_bytes()
        recorded = _record(path).read_text().strip()
    except OSError:
        return None
    if digest(data) != recorded:
        log.warning("%s is not the file flowship wrote (SHA-256 differs); not used.", path)
        return None
    return data


def _record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")
