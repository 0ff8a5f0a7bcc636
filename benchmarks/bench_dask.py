"""toolkit.DaskPool against Dask's own client and the executor facade, on one local cluster.

In one run, per loop, on a 2-worker cluster of processes (``dask scheduler``
and workers started as a ``LocalCluster`` in its own thread, 1 thread per
worker, 127.0.0.1), each contender with its own asynchronous client:

* **map**: ``await pool.map(tiny, range(100,000))`` against Dask's own
  ``await client.gather(client.map(tiny, range(N)))`` (N = 5,000, reported
  as a rate: Dask makes a task per item), with a 1 ms ticker measuring the
  loop's worst stall during the toolkit's map.
* **apply**: sequential ``await pool.apply(tiny, (i,))`` round trips against
  a bare ``await client.submit(tiny, i, pure=False)`` on the same kind of
  client, and ``AsyncExecutor(client.get_executor(pure=False)).run``.
* **CPU-bound**: 200 tasks of ~20 ms of pure-Python work, ``pool.map`` (its
  default chunks), against the local ``toolkit.Pool(2)`` doing the same; and
  both again with ``chunksize=1``, a Dask task per item (Dask's few ms of CPU
  per task then compete with the work on 2 cores); and Dask's own
  ``client.map`` of the same work, the bound of any engine on Dask here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import toolkit
from benchmarks._report import LIBRARY, OTHER, Report
from benchmarks._util import StallMeter, loop_factories, median
from benchmarks.bench_pool import _calibrate, burn, tiny

WORKERS = 2
MAP_ITEMS = 100_000
DASK_MAP_ITEMS = 5_000
APPLY_CALLS = 200
CPU_TASKS = 200


def _start_cluster() -> Any:
    import distributed

    logging.getLogger("distributed").setLevel(logging.ERROR)
    return distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )


async def _client(address: str) -> Any:
    import distributed

    return await distributed.Client(  # type: ignore[no-untyped-call]
        address, asynchronous=True, set_as_default=False
    )


async def _round(address: str, n_cpu: int, quick: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    items = MAP_ITEMS // 10 if quick else MAP_ITEMS
    calls = APPLY_CALLS // 4 if quick else APPLY_CALLS
    cpu_tasks = CPU_TASKS // 4 if quick else CPU_TASKS
    dask_items = DASK_MAP_ITEMS // 5 if quick else DASK_MAP_ITEMS

    async with toolkit.DaskPool(address) as pool:
        await pool.map(tiny, range(100))  # warm: workers claimed, functions cached
        async with StallMeter() as meter:
            start = time.perf_counter()
            await pool.map(tiny, range(items))
            out["map"] = items / (time.perf_counter() - start)
        out["map stall"] = meter.worst_ms
        start = time.perf_counter()
        for i in range(calls):
            await pool.apply(tiny, (i,))
        out["apply"] = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        await pool.map(burn, [n_cpu] * cpu_tasks)
        out["cpu"] = time.perf_counter() - start
        start = time.perf_counter()
        await pool.map(burn, [n_cpu] * cpu_tasks, chunksize=1)
        out["cpu 1"] = time.perf_counter() - start

    client = await _client(address)
    try:
        await client.gather(client.map(tiny, range(10), pure=False))
        start = time.perf_counter()
        await client.gather(client.map(tiny, range(dask_items), pure=False))
        out["dask map"] = dask_items / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(calls):
            await client.submit(tiny, i, pure=False)
        out["dask submit"] = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        await client.gather(client.map(burn, [n_cpu] * cpu_tasks, pure=False))
        out["dask cpu"] = time.perf_counter() - start
    finally:
        await client.close()

    import distributed

    sync_client = await asyncio.to_thread(distributed.Client, address)
    try:
        facade = toolkit.AsyncExecutor(sync_client.get_executor(pure=False))  # type: ignore[no-untyped-call]
        await facade.run(tiny, 0)
        start = time.perf_counter()
        for i in range(calls):
            await facade.run(tiny, i)
        out["executor"] = (time.perf_counter() - start) / calls
        await facade.shutdown()
    finally:
        await asyncio.to_thread(sync_client.close)

    async with toolkit.Pool(WORKERS) as local:
        await local.map(tiny, range(100))
        start = time.perf_counter()
        await local.map(burn, [n_cpu] * cpu_tasks)
        out["local cpu"] = time.perf_counter() - start
        start = time.perf_counter()
        await local.map(burn, [n_cpu] * cpu_tasks, chunksize=1)
        out["local cpu 1"] = time.perf_counter() - start
    return out


def run(quick: bool = False) -> Report:
    n_cpu = _calibrate()
    cluster = _start_cluster()
    report = Report(
        "dask",
        f"Dask: DaskPool on a 2-worker local cluster (median of {1 if quick else 3} rounds)",
        ["loop", "mechanism", "result", "ratio"],
        [],
        quick=quick,
    )
    rows = report.rows
    cpu = CPU_TASKS // 4 if quick else CPU_TASKS
    try:
        for loop_name, factory in loop_factories().items():
            rounds = []
            for _ in range(1 if quick else 3):
                with asyncio.Runner(loop_factory=factory) as runner:
                    rounds.append(runner.run(_round(cluster.scheduler_address, n_cpu, quick)))
            m = {key: median([r[key] for r in rounds]) for key in rounds[0]}
            report.figures[loop_name] = rounds  # every round's figures (s, s per call, items/s)
            # Dask is the existing library here; times are charted as theirs over ours.
            for label, kind, value in [
                ("map vs Dask client.map", LIBRARY, m["map"] / m["dask map"]),
                ("sequential apply vs a bare client.submit", LIBRARY,
                 m["dask submit"] / m["apply"]),
                ("AsyncExecutor(get_executor()).run vs a bare client.submit", OTHER,
                 m["dask submit"] / m["executor"]),
                ("CPU-bound map vs Dask's own client.map", LIBRARY, m["dask cpu"] / m["cpu"]),
                ("CPU-bound map vs the local toolkit.Pool(2)", OTHER, m["local cpu"] / m["cpu"]),
            ]:  # fmt: skip
                report.ratio(loop_name, label, kind, value)
            rows += [
                [loop_name, "toolkit await pool.map (100,000 tiny)", f"{m['map']:,.0f}/s",
                 f"{m['map'] / m['dask map']:.1f}x"],
                [loop_name, "Dask client.gather(client.map(...))", f"{m['dask map']:,.0f}/s",
                 "1.0x"],
                [loop_name, "worst loop stall during the toolkit's map", f"{m['map stall']:.1f} ms",
                 ""],
                [loop_name, "toolkit sequential await pool.apply", f"{m['apply'] * 1e3:.2f} ms",
                 f"{m['apply'] / m['dask submit']:.2f}x the bare submit"],
                [loop_name, "bare await client.submit", f"{m['dask submit'] * 1e3:.2f} ms",
                 "1.00x"],
                [loop_name, "AsyncExecutor(client.get_executor()).run",
                 f"{m['executor'] * 1e3:.2f} ms",
                 f"{m['executor'] / m['dask submit']:.2f}x the bare submit"],
                [loop_name, f"CPU-bound {cpu} x 20 ms, DaskPool map", f"{m['cpu']:.2f} s",
                 f"{m['local cpu'] / m['cpu']:.2f}x the local Pool's speed"],
                [loop_name, f"CPU-bound {cpu} x 20 ms, local toolkit.Pool(2) map",
                 f"{m['local cpu']:.2f} s", "1.00x"],
                [loop_name, "the same, Dask's own client.map (a task per item)",
                 f"{m['dask cpu']:.2f} s",
                 f"{m['local cpu'] / m['dask cpu']:.2f}x the local Pool's speed"],
                [loop_name, "the same, chunksize=1: DaskPool", f"{m['cpu 1']:.2f} s",
                 f"{m['local cpu 1'] / m['cpu 1']:.2f}x the local Pool's speed"],
                [loop_name, "the same, chunksize=1: local toolkit.Pool(2)",
                 f"{m['local cpu 1']:.2f} s", "1.00x"],
            ]  # fmt: skip
    finally:
        cluster.close()
    return report
