"""Who gets which variant: the one pure function every part of flowship calls.

``assign(salt, key, weights)`` hashes the key to one of ``BUCKETS`` buckets (the top 18
bits of ``blake2b(salt, "#bucket", key)``), and each bucket goes to a variant by weighted
rendezvous hashing: each variant draws a uniform number ``u`` from a hash of (salt,
variant, bucket), scores ``-ln(u) / weight`` and the lowest score wins. So

- the answer depends on nothing but its arguments: every worker and every restart agree
  on it;
- a bucket goes to a variant with probability weight / total (an exponential race), and
  with 262,144 buckets the shares of a salt's buckets are typically within a tenth of a
  point of the weights;
- raising one variant's weight lowers only that variant's scores: a bucket (and so a
  key) can only move *to* it, never between the others (consistent bucketing). Lowering
  it moves keys only away from it. A weight of 0 never wins.

The buckets make a request cost one hash, not one per variant: :class:`Assigner` (the
function with its hash state prepared once per revision) remembers each bucket's race
in a fixed-size table, so only a bucket's first key runs it. :func:`race_table` runs
every bucket's race at once (half a second of CPU for two variants), for a server to
compute in a helper process and hand to :meth:`Assigner.fill`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

_SCALE = 1.0 / 2**64
_log, _from_bytes = math.log, int.from_bytes
BUCKET_BITS = 18
BUCKETS = 1 << BUCKET_BITS
_SHIFT = 64 - BUCKET_BITS
_UNDRAWN = 255  # a table entry whose race has not run (a deployment has at most 20 variants)


def unit(salt: str, key: str, label: str = "") -> float:
    """A uniform number in (0, 1) fixed by (salt, label, key): deterministic sampling."""
    digest = hashlib.blake2b(f"{salt}\x1f{label}\x1f{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) * _SCALE


def assign(salt: str, key: str, weights: Mapping[str, float]) -> str:
    """The variant ``key`` is routed to under ``weights`` (variant -> weight, any scale).
    For many keys build one :class:`Assigner` (it allocates its bucket table once)."""
    return Assigner(salt, weights)(key)


def race_table(salt: str, weights: Mapping[str, float]) -> bytes:
    """Every bucket's race for (salt, weights): the table :meth:`Assigner.fill` takes."""
    assigner = Assigner(salt, weights)
    if assigner._only is not None:
        return b""
    return bytes(map(assigner._race, range(BUCKETS)))


class Assigner:
    """``assign`` for one (salt, weights): each variant's hash prefix computed once, and
    each bucket's race run once (a table of ``BUCKETS`` bytes)."""

    def __init__(self, salt: str, weights: Mapping[str, float]) -> None:
        live = {name: float(w) for name, w in weights.items() if w > 0}
        if not live:
            raise ValueError("at least one variant needs a positive weight")
        self.salt = salt
        self.weights = dict(weights)
        self._only = next(iter(live)) if len(live) == 1 else None
        self._names = tuple(live)
        self._variants = [
            (hashlib.blake2b(f"{salt}\x1f{name}\x1f".encode(), digest_size=8), 1.0 / w)
            for name, w in live.items()
        ]
        self._bucket = hashlib.blake2b(f"{salt}\x1f#bucket\x1f".encode(), digest_size=8)
        self._table = bytearray([_UNDRAWN]) * BUCKETS if self._only is None else bytearray()

    def __call__(self, key: str) -> str:
        if self._only is not None:
            return self._only
        h = self._bucket.copy()  # the router's hot path: one hash, one table read
        h.update(key.encode())
        bucket = _from_bytes(h.digest(), "big") >> _SHIFT
        index = self._table[bucket]
        if index == _UNDRAWN:
            index = self._table[bucket] = self._race(bucket)
        return self._names[index]

    @property
    def drawn(self) -> int:
        """Buckets whose race has run (all of them with one live variant: no race)."""
        return BUCKETS if self._only is not None else BUCKETS - self._table.count(_UNDRAWN)

    def fill(self, table: bytes) -> None:
        """Take every bucket's race at once: ``race_table(salt, weights)``, computed
        elsewhere. Races already run here are the same numbers (a pure function)."""
        if self._only is not None:
            return
        if len(table) != BUCKETS or max(table) >= len(self._names):
            raise ValueError("not a race table of this assigner's variants")
        self._table[:] = table

    def _race(self, bucket: int) -> int:
        """The index of the variant with the lowest score for ``bucket``."""
        data = str(bucket).encode()
        best_index, best = 0, math.inf
        for index, (prefix, inverse) in enumerate(self._variants):
            h = prefix.copy()
            h.update(data)
            score = -_log((_from_bytes(h.digest(), "big") + 0.5) * _SCALE) * inverse
            if score < best:
                best_index, best = index, score
        return best_index

    def many(self, keys: Iterable[str]) -> list[str]:
        if self._only is not None:
            return [self._only for _ in keys]
        return [self(k) for k in keys]
