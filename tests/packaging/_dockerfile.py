"""Read what a generated Dockerfile runs: its ENV, HEALTHCHECK and CMD instructions."""

from __future__ import annotations

import json
import shlex
from pathlib import Path


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(w.split(None, 1)[0].upper(), w.split(None, 1)[1]) for w in joined]


def env(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, args in instructions(path):
        if name == "ENV":
            found.update(dict(part.split("=", 1) for part in shlex.split(args)))
    return found


def cmd(path: Path) -> list[str]:
    (args,) = [a for n, a in instructions(path) if n == "CMD"]
    return json.loads(args)  # exec form: a JSON array


def healthcheck(path: Path) -> list[str]:
    (args,) = [a for n, a in instructions(path) if n == "HEALTHCHECK"]
    return json.loads(args[args.index("CMD") + len("CMD") :])
