"""Async map of 200,000 tiny tasks over a 2-worker process executor.

In one run, on the same warm ``ProcessPoolExecutor`` (forkserver):

* ``AsyncExecutor.map`` consumed with ``async for`` (adaptive chunks), with a
  1 ms ticker on the loop measuring the worst stall meanwhile;
* the stdlib run synchronously: ``ProcessPoolExecutor.map(chunksize=c)`` for
  several c, the best one counted ("a good chunksize");
* the per-call asyncio way: ``gather(*[loop.run_in_executor(ex, f, i)])``
  (over 20,000 items: at its rate 200,000 would take half a minute);
* the best existing library's per-call way, ``anyio.to_process.run_sync``
  (over 2,000 items);
* memory: ``map`` over ``itertools.count()`` stopped after 1,000,000 results,
  the parent's RSS growth (psutil).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
import time
from typing import Any

import anyio.to_process
import psutil

import toolkit
from benchmarks._report import LIBRARY, STDLIB, Report, peaks, rounded
from benchmarks._util import StallMeter, loop_factories, median

ITEMS = 200_000
GATHER_ITEMS = 20_000
ANYIO_ITEMS = 2_000
COUNT_STOP = 1_000_000
CHUNKSIZES = (500, 2_000, 5_000, 20_000)
WORKERS = 2


def tiny(x: int) -> int:
    return x


def _stdlib_sync(executor: cf.ProcessPoolExecutor, chunksize: int) -> float:
    start = time.perf_counter()
    for _ in executor.map(tiny, range(ITEMS), chunksize=chunksize):
        pass
    return ITEMS / (time.perf_counter() - start)


async def _toolkit_map(facade: toolkit.AsyncExecutor) -> tuple[float, StallMeter]:
    async with StallMeter() as meter:
        start = time.perf_counter()
        async for _ in facade.map(tiny, range(ITEMS)):
            pass
        elapsed = time.perf_counter() - start
    return ITEMS / elapsed, meter


async def _gather(executor: cf.ProcessPoolExecutor) -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    await asyncio.gather(*[loop.run_in_executor(executor, tiny, i) for i in range(GATHER_ITEMS)])
    return GATHER_ITEMS / (time.perf_counter() - start)


async def _anyio(limiter: anyio.CapacityLimiter) -> float:
    start = time.perf_counter()
    await asyncio.gather(
        *[anyio.to_process.run_sync(tiny, i, limiter=limiter) for i in range(ANYIO_ITEMS)]
    )
    return ANYIO_ITEMS / (time.perf_counter() - start)


async def _memory(facade: toolkit.AsyncExecutor) -> float:
    process = psutil.Process()
    results = facade.map(tiny, itertools.count())
    baseline = peak = 0
    async with results:
        async for value in results:
            if value == 100_000:  # past the ramp-up: chunks at full size
                baseline = peak = process.memory_info().rss
            elif value % 100_000 == 0 and value:
                peak = max(peak, process.memory_info().rss)
            if value + 1 >= COUNT_STOP:
                break
    return (peak - baseline) / 2**20


async def _measure(rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    executor = cf.ProcessPoolExecutor(WORKERS, mp_context=toolkit.get_context())
    facade = toolkit.AsyncExecutor(executor)
    limiter = anyio.CapacityLimiter(WORKERS)
    await facade.map(tiny, range(10_000))  # start the workers
    await _anyio(limiter)
    ours: list[float] = []
    stalls: list[float] = []
    p99s: list[float] = []
    stdlib: dict[int, list[float]] = {c: [] for c in CHUNKSIZES}
    gathers: list[float] = []
    anyios: list[float] = []
    worst_meter: StallMeter | None = None
    for _ in range(rounds):
        value, meter = await _toolkit_map(facade)
        ours.append(value)
        stalls.append(meter.worst_ms)
        p99s.append(meter.p99_ms)
        # The chart shows the round of the headline figure (the worst), not a kind one.
        if worst_meter is None or meter.worst_ms > worst_meter.worst_ms:
            worst_meter = meter
        for chunksize in CHUNKSIZES:
            stdlib[chunksize].append(_stdlib_sync(executor, chunksize))
        gathers.append(await _gather(executor))
        anyios.append(await _anyio(limiter))
    memory = await _memory(facade)
    await facade.shutdown()
    best_chunksize = max(CHUNKSIZES, key=lambda c: median(stdlib[c]))
    assert worst_meter is not None
    times, gaps = worst_meter.series_ms()
    stall = {
        "round": stalls.index(max(stalls)) + 1,
        "rounds": rounds,
        "period_ms": worst_meter.period_ms,
        "points": [rounded(p, 3) for p in peaks(times, gaps)],
    }
    medians = {
        "ours": median(ours),
        "stall_worst": max(stalls),
        "stall_median_worst": median(stalls),
        "stall_p99": median(p99s),
        "stdlib": median(stdlib[best_chunksize]),
        "best_chunksize": best_chunksize,
        "gather": median(gathers),
        "anyio": median(anyios),
        "memory_mb": memory,
    }
    return medians, stall


def run(quick: bool = False) -> Report:
    rounds = 2 if quick else 7
    report = Report(
        "map",
        f"map: {ITEMS:,} tiny tasks, {WORKERS} forkserver workers (median of {rounds} rounds)",
        ["loop", "mechanism", "items/s", "toolkit is"],
        [],
        quick=quick,
        series={"stall": {}},
    )
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            r, stall = runner.run(_measure(rounds))
        report.figures[loop_name] = r
        report.series["stall"][loop_name] = stall
        ours = r["ours"]
        chunksize = int(r["best_chunksize"])
        best = f"ProcessPoolExecutor.map(chunksize={chunksize})"
        report.ratio(loop_name, best, STDLIB, ours / r["stdlib"])
        report.ratio(loop_name, "gather(run_in_executor) per item", STDLIB, ours / r["gather"])
        report.ratio(loop_name, "gather(anyio.to_process) per item", LIBRARY, ours / r["anyio"])
        report.rows += [
            [loop_name, "toolkit AsyncExecutor.map (async for)", f"{ours:,.0f}", "1.00x"],
            [
                loop_name,
                f"ProcessPoolExecutor.map(chunksize={int(r['best_chunksize'])}), sync",
                f"{r['stdlib']:,.0f}",
                f"{ours / r['stdlib']:.2f}x",
            ],
            [
                loop_name,
                "gather(loop.run_in_executor) per item",
                f"{r['gather']:,.0f}",
                f"{ours / r['gather']:.1f}x",
            ],
            [
                loop_name,
                "gather(anyio.to_process.run_sync) per item",
                f"{r['anyio']:,.0f}",
                f"{ours / r['anyio']:.1f}x",
            ],
            [
                loop_name,
                "worst loop stall during the toolkit map (1 ms ticker)",
                f"{r['stall_worst']:.1f} ms (median of rounds {r['stall_median_worst']:.1f} ms, "
                f"p99 {r['stall_p99']:.2f} ms)",
                "",
            ],
            [
                loop_name,
                f"RSS growth, map over count() to {COUNT_STOP:,}",
                f"{r['memory_mb']:.1f} MB",
                "",
            ],
        ]
    return report
