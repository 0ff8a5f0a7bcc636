"""The readiness backends side by side: the IPC figures under linux, posix and threads.

Each backend runs in a fresh interpreter (``TOOLKIT_BACKEND=<name>``), on
both loops, the IPC benchmark's own measurements: ``await Queue.get`` and
``await Connection.recv`` against a blocking loop and aioprocessing, and
the ``Event.wait`` wake-up against a raw pipe byte watched by the loop.
Then the threads each costs: 2,000 coroutines waiting on one queue.

Targets (issue 12): posix at least 0.8x the blocking loops and a wake-up p50
at most 2x the raw floor; threads at least 5x aioprocessing, and at most one
extra thread per object with waiters.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import toolkit
from benchmarks import bench_ipc
from benchmarks._report import FLOOR, LIBRARY, STDLIB, Report
from benchmarks._util import loop_factories

ROOT = Path(__file__).resolve().parents[1]
WAITERS = 2_000


async def _threads_for_waiters() -> int:
    """Threads added while WAITERS coroutines wait on one queue (0.3 s in)."""
    q: toolkit.Queue[int] = toolkit.Queue()
    before = threading.active_count()
    waiters = [asyncio.ensure_future(q.get()) for _ in range(WAITERS)]
    await asyncio.sleep(0.3)
    added = threading.active_count() - before
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    q.close()
    return added


def backend_main(loop_name: str, quick: bool) -> None:
    """In a fresh interpreter under one backend: print its figures as JSON."""
    if quick:
        bench_ipc.ROUNDS, bench_ipc.PINGS = 1, 50
    with asyncio.Runner(loop_factory=loop_factories()[loop_name]) as runner:
        figures: dict[str, Any] = {
            "backend": toolkit.get_backend(),
            # First: later waits leave idle helper threads that a count would reuse.
            "threads": runner.run(_threads_for_waiters()),
            "queue": runner.run(bench_ipc._queue_rates()),
            "pipe": runner.run(bench_ipc._pipe_rates()),
            "latency": runner.run(bench_ipc._event_latency()),
        }
        runner.run(toolkit.shutdown_default_executors())
    print(json.dumps(figures))


def _measure(backend: str, loop_name: str, quick: bool) -> dict[str, Any]:
    code = (
        "from benchmarks.bench_backends import backend_main; "
        f"backend_main({loop_name!r}, {quick!r})"
    )
    env = {**os.environ, "TOOLKIT_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool = False) -> Report:
    report = Report(
        "backends",
        "Backends: the IPC figures under each readiness backend "
        f"({'1 round' if quick else f'median of {bench_ipc.ROUNDS} rounds'} each)",
        [
            "loop",
            "backend",
            "await Queue.get: rate, vs blocking, vs aioprocessing",
            "await Connection.recv: same",
            "Event.wait wake-up",
            f"threads, {WAITERS:,} waiters on one queue",
        ],
        [],
        quick=quick,
    )
    for loop_name in loop_factories():
        for backend in toolkit.available_backends():
            f = _measure(backend, loop_name, quick)
            report.figures.setdefault(loop_name, {})[backend] = f
            queue, pipe = f["queue"], f["pipe"]
            ours_p50, _ = f["latency"]["toolkit Event.wait"]
            floor_p50, _ = f["latency"]["raw pipe byte + add_reader"]
            aio_q = queue.get("aioprocessing", float("nan"))
            aio_p = pipe.get("aioprocessing", float("nan"))
            report.rows.append(
                [
                    loop_name,
                    backend,
                    f"{queue['toolkit']:,.0f}/s: {queue['toolkit'] / queue['blocking']:.2f}x, "
                    f"{queue['toolkit'] / aio_q:.1f}x",
                    f"{pipe['toolkit']:,.0f}/s: {pipe['toolkit'] / pipe['blocking']:.2f}x, "
                    f"{pipe['toolkit'] / aio_p:.1f}x",
                    f"p50 {ours_p50:.0f} us: {ours_p50 / floor_p50:.2f}x the floor",
                    f"+{f['threads']}",
                ]
            )
            for label, kind, value in [
                ("Queue.get vs blocking", STDLIB, queue["toolkit"] / queue["blocking"]),
                ("Queue.get vs aioprocessing", LIBRARY, queue["toolkit"] / aio_q),
                ("Connection.recv vs blocking", STDLIB, pipe["toolkit"] / pipe["blocking"]),
                ("Connection.recv vs aioprocessing", LIBRARY, pipe["toolkit"] / aio_p),
                ("Event.wait wake-up p50 vs raw pipe byte", FLOOR, floor_p50 / ours_p50),
            ]:
                report.ratio(loop_name, f"{backend}: {label}", kind, value)
    return report
