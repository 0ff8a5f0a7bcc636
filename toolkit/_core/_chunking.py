"""How many inputs go into one task of a map: fixed, or adapted to the work.

Pure logic, no I/O: the map feeds back how long each chunk ran *in the
worker* and asks for the size of the next one.

Why adapt: a task sent to another process costs a fixed overhead (pickling,
two pipe hops, a wake-up: a few hundred microseconds). Tiny functions need
thousands of inputs per task to amortise it; slow ones need one input per
task so that every worker stays busy. The sizer aims each chunk at
``target`` seconds of worker time: it starts at one input, grows at most
``growth`` times per observation (a cheap first item must not commit
thousands of expensive ones to a single worker), and never exceeds
``maximum`` (memory: a map holds at most window x chunk inputs).
"""

from __future__ import annotations

import math

__all__ = ["ChunkSizer"]


class ChunkSizer:
    """Chooses chunk sizes for a map.

    Args:
        fixed: a size chosen by the caller; disables adaptation.
        target: seconds of worker time each adaptive chunk aims at.
        maximum: the largest adaptive chunk.
        growth: the most a chunk may grow from one observation to the next.
        length: the number of inputs, when known: chunks stay small enough
            that every worker gets several (``multiprocessing.Pool``'s rule).
        workers: how many workers share the map.
    """

    __slots__ = ("_fixed", "_growth", "_maximum", "_per_item", "_size", "_target")

    def __init__(
        self,
        fixed: int | None = None,
        *,
        target: float = 0.02,
        maximum: int = 2048,
        growth: float = 4.0,
        length: int | None = None,
        workers: int = 1,
    ) -> None:
        self._fixed = fixed
        self._target = target
        self._growth = growth
        if length is not None:
            maximum = max(1, min(maximum, math.ceil(length / (4 * max(1, workers)))))
        self._maximum = maximum
        self._size = 1
        self._per_item: float | None = None

    @property
    def adaptive(self) -> bool:
        return self._fixed is None

    def next_size(self) -> int:
        """Return how many inputs the next chunk should take."""
        return self._fixed if self._fixed is not None else self._size

    def record(self, items: int, elapsed: float) -> None:
        """Learn from a finished chunk: it ran ``items`` inputs in ``elapsed`` seconds."""
        if self._fixed is not None or items <= 0:
            return
        per_item = max(elapsed, 1e-9) / items
        # Smooth: one odd chunk (a GC pause, a cold cache) must not swing the size.
        self._per_item = per_item if self._per_item is None else 0.5 * (self._per_item + per_item)
        ideal = self._target / self._per_item
        limit = math.ceil(self._size * self._growth)  # ceil: from 1, growth 1.5 must still grow
        self._size = max(1, min(self._maximum, int(min(ideal, limit))))
