"""Manager proxies: awaited round trips against the stdlib's blocking proxy and aioprocessing.

In one run, per loop, one server each (forkserver), a dict of one key:

* sequential ``await d.get(k)`` (toolkit) against the stdlib's blocking
  ``d.get(k)`` in a plain loop, and aioprocessing's ``AioManager().dict()``
  (it has no awaitable dict proxy: its users await
  ``loop.run_in_executor(None, d.get, k)``);
* 100 coroutines calling at once: toolkit, and the stdlib proxy through
  ``asyncio.to_thread`` (a thread per waiting call, up to the default
  executor's limit); the most threads the process had meanwhile, over its
  count before the benchmark (toolkit's are the few that open connections).

Rounds alternate between the contenders, so a noisy neighbour hurts all of
them alike; rates are medians over rounds, and the ratio to the stdlib is the
median of the ratios within each round.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import Any

import toolkit
from benchmarks._report import LIBRARY, STDLIB, Report
from benchmarks._util import loop_factories, median

CALLS = 5_000
SLOW_CALLS = 1_000  # thread-per-call baselines
CALLERS = 100
ROUNDS = 9


class _ThreadPeak:
    """The most threads the process had while the block ran (sampled every millisecond)."""

    def __init__(self) -> None:
        self.peak = threading.active_count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, threading.active_count() - 1)  # not counting the sampler

    def __enter__(self) -> _ThreadPeak:
        self.before = threading.active_count()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _toolkit_sequential(d: Any) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        await d.get("k")
    return CALLS / (time.perf_counter() - start)


def _stdlib_sequential(d: Any) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        d.get("k")
    return CALLS / (time.perf_counter() - start)


async def _executor_sequential(d: Any) -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(SLOW_CALLS):
        await loop.run_in_executor(None, d.get, "k")
    return SLOW_CALLS / (time.perf_counter() - start)


async def _toolkit_concurrent(d: Any) -> tuple[float, int]:
    each = CALLS // CALLERS

    async def caller() -> None:
        for _ in range(each):
            await d.get("k")

    with _ThreadPeak() as threads:
        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        elapsed = time.perf_counter() - start
    return each * CALLERS / elapsed, threads.peak - _baseline_threads


async def _to_thread_concurrent(d: Any) -> tuple[float, int]:
    each = SLOW_CALLS // CALLERS

    async def caller() -> None:
        for _ in range(each):
            await asyncio.to_thread(d.get, "k")

    with _ThreadPeak() as threads:
        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        elapsed = time.perf_counter() - start
    return each * CALLERS / elapsed, threads.peak - _baseline_threads


_baseline_threads = 0


async def _measure() -> dict[str, list[Any]]:
    global _baseline_threads
    _baseline_threads = threading.active_count()  # before any executor or manager
    ctx = toolkit.get_context()
    results: dict[str, list[Any]] = {}
    plain_manager = ctx.Manager()
    try:
        import aioprocessing

        aio_manager: Any = aioprocessing.AioManager()
    except ImportError:
        aio_manager = None
    try:
        plain = plain_manager.dict(k=1)
        aio_dict = aio_manager.dict(k=1) if aio_manager is not None else None
        async with toolkit.Manager(context=ctx) as m:
            ours = await m.dict(k=1)
            await ours.get("k")
            for _ in range(ROUNDS):
                # Concurrent first: its thread count is then not the baseline executors'.
                results.setdefault("toolkit 100", []).append(await _toolkit_concurrent(ours))
                results.setdefault("toolkit", []).append(await _toolkit_sequential(ours))
                results.setdefault("stdlib", []).append(_stdlib_sequential(plain))
                if aio_dict is not None:
                    rate = await _executor_sequential(aio_dict)
                    results.setdefault("aioprocessing", []).append(rate)
                results.setdefault("to_thread 100", []).append(await _to_thread_concurrent(plain))
            results["connections"] = [ours._pool.connections()]
    finally:
        plain_manager.shutdown()
        if aio_manager is not None:
            aio_manager.shutdown()
    return results


def _median_run(runs: list[tuple[float, int]]) -> tuple[float, int]:
    """The median rate, with the threads added in the first round.

    Threads outlive a round (executors keep theirs), so later rounds would
    count the to_thread baseline's as the toolkit's; the first round runs
    the toolkit before any executor started.
    """
    rate = median([r for r, _ in runs])
    return rate, runs[0][1]


def run(quick: bool = False) -> Report:
    global CALLS, SLOW_CALLS, ROUNDS
    if quick:
        CALLS, SLOW_CALLS, ROUNDS = 1_000, 200, 1
    report = Report(
        "managers",
        f"Managers: dict.get round trips ({CALLS:,} calls per round, median of {ROUNDS} rounds)",
        ["loop", "mechanism", "rate", "toolkit is", "threads added"],
        [],
        quick=quick,
    )
    rows = report.rows
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            results = runner.run(_measure())
            runner.run(toolkit.shutdown_default_executors())
        report.figures[loop_name] = results  # every round's rates (and threads added)
        ours = median(results["toolkit"])
        stdlib = median(results["stdlib"])
        # Ratios within each round (the contenders ran back to back), then their median:
        # steadier on a shared machine than a ratio of medians taken at different times.
        ratios = [t / s for t, s in zip(results["toolkit"], results["stdlib"], strict=True)]
        versus_stdlib = median(ratios)
        report.ratio(loop_name, "sequential vs the stdlib proxy, blocking", STDLIB, versus_stdlib)
        rows.append([loop_name, "toolkit: await d.get(k)", f"{ours:,.0f}/s", "", "0"])
        rows.append(
            [
                loop_name,
                "stdlib proxy: d.get(k), blocking",
                f"{stdlib:,.0f}/s",
                f"{versus_stdlib:.2f}x (rounds: {min(ratios):.2f}-{max(ratios):.2f})",
                "0",
            ]
        )
        if "aioprocessing" in results:
            aio = median(results["aioprocessing"])
            what = "sequential vs aioprocessing (run_in_executor)"
            report.ratio(loop_name, what, LIBRARY, ours / aio)
            rows.append(
                [
                    loop_name,
                    "aioprocessing AioManager dict: await run_in_executor(None, d.get, k)",
                    f"{aio:,.0f}/s",
                    f"{ours / aio:.2f}x",
                    "executor",
                ]
            )
        concurrent = _median_run(results["toolkit 100"])
        threaded = _median_run(results["to_thread 100"])
        what = f"{CALLERS} coroutines vs asyncio.to_thread(stdlib proxy)"
        report.ratio(loop_name, what, STDLIB, concurrent[0] / threaded[0])
        rows.append(
            [
                loop_name,
                f"toolkit: {CALLERS} coroutines at once ({results['connections'][0]} connections)",
                f"{concurrent[0]:,.0f}/s",
                f"{concurrent[0] / ours:.2f}x its sequential rate",
                f"+{concurrent[1]}",
            ]
        )
        rows.append(
            [
                loop_name,
                f"stdlib proxy, {CALLERS} coroutines: await asyncio.to_thread(d.get, k)",
                f"{threaded[0]:,.0f}/s",
                f"{concurrent[0] / threaded[0]:.2f}x",
                f"+{threaded[1]}",
            ]
        )
    return report


if __name__ == "__main__":
    multiprocessing.freeze_support()
    print(run())
