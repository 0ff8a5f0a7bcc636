"""to_thread throughput: 1,000 concurrent no-op calls, against the stdlib and anyio.

Compared in one run, rounds interleaved so that machine noise hits every
contender alike; the median of the rounds is reported:

* ``toolkit.to_thread``
* ``loop.run_in_executor(None, fn)`` (the raw stdlib mechanism; its default
  ThreadPoolExecutor has the same size as the toolkit's thread cache)
* ``asyncio.to_thread`` (the same, plus a context copy)
* ``anyio.to_thread.run_sync`` (the best existing library; 40 threads)
"""

from __future__ import annotations

import asyncio

import anyio.to_thread

import toolkit
from benchmarks._report import LIBRARY, STDLIB, Report
from benchmarks._util import loop_factories, median, rate

CALLS = 1_000
ROUNDS = 15


def noop() -> None:
    return None


async def _gather_toolkit() -> object:
    return await asyncio.gather(*[toolkit.to_thread(noop) for _ in range(CALLS)])


async def _gather_run_in_executor() -> object:
    loop = asyncio.get_running_loop()
    return await asyncio.gather(*[loop.run_in_executor(None, noop) for _ in range(CALLS)])


async def _gather_asyncio_to_thread() -> object:
    return await asyncio.gather(*[asyncio.to_thread(noop) for _ in range(CALLS)])


async def _gather_anyio() -> object:
    return await asyncio.gather(*[anyio.to_thread.run_sync(noop) for _ in range(CALLS)])


CONTENDERS = {
    "toolkit.to_thread": _gather_toolkit,
    "loop.run_in_executor": _gather_run_in_executor,
    "asyncio.to_thread": _gather_asyncio_to_thread,
    "anyio.to_thread.run_sync": _gather_anyio,
}


async def _measure(rounds: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for body in CONTENDERS.values():  # warm up: threads started, caches filled
        await body()
    for _ in range(rounds):
        for name, body in CONTENDERS.items():
            rates[name].append(await rate(CALLS, body))
    await toolkit.shutdown_default_executors()
    return {name: median(values) for name, values in rates.items()}


KINDS = {
    "loop.run_in_executor": STDLIB,
    "asyncio.to_thread": STDLIB,
    "anyio.to_thread.run_sync": LIBRARY,
}


def run(quick: bool = False) -> Report:
    rounds = 3 if quick else ROUNDS
    report = Report(
        "to_thread",
        f"to_thread: {CALLS:,} concurrent no-op calls (median of {rounds} rounds)",
        ["loop", "mechanism", "calls/s", "toolkit is"],
        [],
        quick=quick,
    )
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(_measure(rounds))
        report.figures[loop_name] = {"calls_per_s": result}
        ours = result["toolkit.to_thread"]
        for name, value in result.items():
            report.rows.append(
                [
                    loop_name,
                    name,
                    f"{value:,.0f}",
                    f"{ours / value:.2f}x" if name != "toolkit.to_thread" else "1.00x",
                ]
            )
            if name in KINDS:
                report.ratio(loop_name, name, KINDS[name], ours / value)
    return report
