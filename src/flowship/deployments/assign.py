"""Who gets which variant: the one pure function every part of flowship calls.

``assign(salt, key, weights)`` is weighted rendezvous hashing: each variant draws a
uniform number ``u`` from a hash of (salt, variant, key), scores ``-ln(u) / weight`` and
the lowest score wins. So

- the answer depends on nothing but its arguments: every worker, every restart and the
  A/B report agree on it;
- a variant wins a key with probability weight / total (an exponential race), so over
  many keys the shares match the weights;
- raising one variant's weight lowers only that variant's scores: a key can only move
  *to* it, never between the others (consistent bucketing). Lowering it moves keys only
  away from it. A weight of 0 never wins.

The router calls :class:`Assigner` (the same function with the per-variant hash state
prepared once) for every row; the A/B report calls it to check the observed split.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

_SCALE = 1.0 / 2**64
_log, _from_bytes = math.log, int.from_bytes


def unit(salt: str, key: str, label: str = "") -> float:
    """A uniform number in (0, 1) fixed by (salt, label, key): deterministic sampling."""
    digest = hashlib.blake2b(f"{salt}\x1f{label}\x1f{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) * _SCALE


def assign(salt: str, key: str, weights: Mapping[str, float]) -> str:
    """The variant ``key`` is routed to under ``weights`` (variant -> weight, any scale)."""
    return Assigner(salt, weights)(key)


class Assigner:
    """``assign`` for one (salt, weights), with each variant's hash prefix computed once."""

    def __init__(self, salt: str, weights: Mapping[str, float]) -> None:
        live = {name: float(w) for name, w in weights.items() if w > 0}
        if not live:
            raise ValueError("at least one variant needs a positive weight")
        self.salt = salt
        self.weights = dict(weights)
        self._only = next(iter(live)) if len(live) == 1 else None
        self._variants = [
            (name, hashlib.blake2b(f"{salt}\x1f{name}\x1f".encode(), digest_size=8), 1.0 / w)
            for name, w in live.items()
        ]

    def __call__(self, key: str) -> str:
        if self._only is not None:
            return self._only
        data = key.encode()
        best_name, best = "", math.inf
        for name, prefix, inverse in self._variants:  # the router's hot path: few lookups
            h = prefix.copy()
            h.update(data)
            score = -_log((_from_bytes(h.digest(), "big") + 0.5) * _SCALE) * inverse
            if score < best:
                best_name, best = name, score
        return best_name

    def many(self, keys: Iterable[str]) -> list[str]:
        if self._only is not None:
            return [self._only for _ in keys]
        return [self(k) for k in keys]
