"""to_process throughput: 1,000 concurrent tiny calls, against the stdlib and anyio.

``to_process`` runs on the toolkit's own elastic ``Pool`` (one per event
loop). Compared in one run, rounds interleaved so that machine noise hits
every contender alike; the median of the rounds is reported:

* ``toolkit.to_process``
* ``loop.run_in_executor(ProcessPoolExecutor, fn)`` (the raw stdlib
  mechanism, what ``to_process`` ran on before), with as many forkserver
  workers as the toolkit's pool
* ``anyio.to_process.run_sync`` (the best existing library's per-call way;
  its default limiter allows one worker per CPU)

Every contender's workers are started (warm) before the rounds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os

import anyio.to_process

import toolkit
from benchmarks._report import LIBRARY, STDLIB, Report
from benchmarks._util import loop_factories, median, rate

CALLS = 1_000
ROUNDS = 7


def tiny(x: int) -> int:
    return -x


async def _measure(rounds: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    executor = cf.ProcessPoolExecutor(workers, mp_context=toolkit.get_context())

    async def ours() -> object:
        return await asyncio.gather(*[toolkit.to_process(tiny, i) for i in range(CALLS)])

    async def stdlib() -> object:
        return await asyncio.gather(
            *[loop.run_in_executor(executor, tiny, i) for i in range(CALLS)]
        )

    async def anyio_way() -> object:
        return await asyncio.gather(*[anyio.to_process.run_sync(tiny, i) for i in range(CALLS)])

    contenders = {
        "toolkit.to_process": ours,
        "run_in_executor(ProcessPoolExecutor)": stdlib,
        "anyio.to_process.run_sync": anyio_way,
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for body in contenders.values():  # warm up: workers started
            await body()
        for _ in range(rounds):
            for name, body in contenders.items():
                rates[name].append(await rate(CALLS, body))
    finally:
        executor.shutdown()
        await toolkit.shutdown_default_executors()
    return {name: median(values) for name, values in rates.items()}


KINDS = {
    "run_in_executor(ProcessPoolExecutor)": STDLIB,
    "anyio.to_process.run_sync": LIBRARY,
}


def run(quick: bool = False) -> Report:
    rounds = 2 if quick else ROUNDS
    report = Report(
        "to_process",
        f"to_process: {CALLS:,} concurrent tiny calls (median of {rounds} rounds)",
        ["loop", "mechanism", "calls/s", "toolkit is"],
        [],
        quick=quick,
    )
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(_measure(rounds))
        report.figures[loop_name] = {"calls_per_s": result}
        ours = result["toolkit.to_process"]
        for name, value in result.items():
            report.rows.append(
                [
                    loop_name,
                    name,
                    f"{value:,.0f}",
                    f"{ours / value:.2f}x" if name != "toolkit.to_process" else "1.00x",
                ]
            )
            if name in KINDS:
                report.ratio(loop_name, name, KINDS[name], ours / value)
    return report


if __name__ == "__main__":
    print(run())
