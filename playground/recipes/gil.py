"""The GIL, timed: CPU-bound work on 4 threads takes as long as serially; on 4 processes less."""

from __future__ import annotations

import time

import toolkit
from playground.recipes._common import PACE


def count_down(n: int) -> int:
    while n > 0:
        n -= 1
    return n


async def main(pace: float = PACE) -> None:
    n = int(2_000_000 * max(pace, 0.01) / PACE)  # about half a second of CPU at the default pace
    timings = {}
    for kind, cls in (("threads", toolkit.ThreadPool), ("processes", toolkit.Pool)):
        async with cls(4, name=f"recipe-gil-{kind}") as pool:
            await pool.map(count_down, [1] * 4)  # workers started before the clock runs
            started = time.perf_counter()
            await pool.map(count_down, [n] * 4)
            timings[kind] = time.perf_counter() - started
            print(f"4 x count_down({n:,}) on 4 {kind}: {timings[kind]:.2f}s")
    print(f"processes were {timings['threads'] / timings['processes']:.1f}x faster (cores matter)")
