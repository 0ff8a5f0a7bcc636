"""toolkit.Pool against multiprocessing.Pool, ProcessPoolExecutor and aiomultiprocess.

In one run, per loop, 2 workers, forkserver unless stated:

* **map**: ``await pool.map(tiny, range(200,000))`` against a synchronous
  ``multiprocessing.Pool(2).map`` (its default chunksize) and aiomultiprocess's
  ``await pool.map`` (the best existing async pool; it needs coroutine
  functions and does not chunk: 2,000 items, reported as a rate).
* **apply**: ``gather`` of 20,000 concurrent ``pool.apply(tiny, (i,))`` with a
  1 ms ticker measuring the worst loop stall meanwhile; against aiomultiprocess's
  ``apply`` (2,000 calls) and ``loop.run_in_executor(ProcessPoolExecutor)``
  (5,000 calls). The floor of that shape: ``gather`` of 20,000 coroutines that
  do nothing (asyncio runs every new task's first step in one loop pass), and
  ``submit`` 20,000 times then ``gather`` the futures (no task per call).
* **CPU-bound**: 200 tasks of ~20 ms of pure-Python work, ``pool.map(...,
  chunksize=1)``, against a bare static split: 2 forked processes running
  100 each.
* **cold start**: a fresh ``Pool(2)`` to the first ``apply`` result against a
  fresh ``ProcessPoolExecutor(2)`` to the first ``submit`` result; cold (a
  fresh interpreter each, its forkserver not started yet) and warm (the
  forkserver running).
* **crash and timeout**: a task stamps the clock, then SIGKILLs itself: the
  time until ``WorkerDiedError`` reaches the caller. A task stamps the clock,
  then sleeps 5 s under ``timeout=0.5``: the time until ``TaskTimeoutError``.
* **idle**: CPU used by the parent and the workers of an idle 2-worker pool
  (psutil), against an idle aiomultiprocess pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomultiprocess
import psutil

import toolkit
from benchmarks._report import FLOOR, LIBRARY, STDLIB, Report
from benchmarks._util import StallMeter, loop_factories, median

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

WORKERS = 2
MAP_ITEMS = 200_000
AIOMP_MAP_ITEMS = 2_000
APPLY_CALLS = 20_000
COLD_ROUNDS = 7  # a fresh interpreter each: a few ms apiece, noisy, so more rounds
AIOMP_APPLY_CALLS = 2_000
EXECUTOR_CALLS = 5_000
CPU_TASKS = 200
CPU_TASK_SECONDS = 0.020
IDLE_SECONDS = 5.0
ROOT = Path(__file__).resolve().parent.parent


# --- what the workers run (top level: pickled by reference) -------------------------------------


def tiny(x: int) -> int:
    return x


async def atiny(x: int) -> int:
    return x


def burn(n: int) -> int:
    """Pure-Python CPU work: n loop iterations."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def _burn_many(n: int, count: int) -> None:
    for _ in range(count):
        burn(n)


def stamp_then_kill(path: str) -> None:
    Path(path).write_text(repr(time.perf_counter()))  # CLOCK_MONOTONIC: system-wide
    os.kill(os.getpid(), signal.SIGKILL)


def stamp_then_sleep(path: str, seconds: float) -> None:
    Path(path).write_text(repr(time.perf_counter()))
    time.sleep(seconds)


# --- map and apply --------------------------------------------------------------------------------


async def _toolkit_map(pool: toolkit.Pool) -> float:
    start = time.perf_counter()
    await pool.map(tiny, range(MAP_ITEMS))
    return MAP_ITEMS / (time.perf_counter() - start)


def _mp_map(mp_pool: Any) -> float:
    start = time.perf_counter()
    mp_pool.map(tiny, range(MAP_ITEMS))
    return MAP_ITEMS / (time.perf_counter() - start)


async def _aiomp_map(aio_pool: Any) -> float:
    start = time.perf_counter()
    await aio_pool.map(atiny, range(AIOMP_MAP_ITEMS))
    return AIOMP_MAP_ITEMS / (time.perf_counter() - start)


async def _gathered(count: int, make: Callable[[int], Any]) -> tuple[float, float, float]:
    """gather(*[make(i) for i in range(count)]): its rate and worst loop stalls.

    Returns the rate, the worst stall overall (it includes the pass in which
    asyncio runs every new task's first step, which submits the calls, and
    gather's own set-up: a callback on each of the futures, ~10 ms for 20,000),
    and the worst stall after those, while the results come back.
    """
    async with StallMeter() as whole:
        start = time.perf_counter()
        calls = [asyncio.ensure_future(make(i)) for i in range(count)]  # what gather does
        gathered = asyncio.gather(*calls)
        await asyncio.sleep(0)  # every task's first step: all calls submitted
        async with StallMeter() as after:
            await gathered
        elapsed = time.perf_counter() - start
    return count / elapsed, whole.worst_ms, after.worst_ms


async def _nothing(i: int) -> int:
    return i


async def _submitted(pool: toolkit.Pool) -> tuple[float, float, float]:
    async with StallMeter() as whole:
        start = time.perf_counter()
        futures = [pool.submit(tiny, i) for i in range(APPLY_CALLS)]
        gathered = asyncio.gather(*futures)  # its set-up outside "after", as in _gathered
        async with StallMeter() as after:
            await gathered
        elapsed = time.perf_counter() - start
    return APPLY_CALLS / elapsed, whole.worst_ms, after.worst_ms


# --- CPU-bound ------------------------------------------------------------------------------------


def _calibrate() -> int:
    """Iterations of burn() that take CPU_TASK_SECONDS here (median of 5)."""
    n = 100_000
    start = time.perf_counter()
    burn(n)
    n = max(1_000, int(n * CPU_TASK_SECONDS / (time.perf_counter() - start)))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        burn(n)
        times.append(time.perf_counter() - start)
    return max(1_000, int(n * CPU_TASK_SECONDS / statistics.median(times)))


async def _toolkit_cpu(pool: toolkit.Pool, n: int, tasks: int) -> float:
    start = time.perf_counter()
    await pool.map(burn, [n] * tasks, chunksize=1)
    return time.perf_counter() - start


def _static_split(n: int, tasks: int) -> float:
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    children = [ctx.Process(target=_burn_many, args=(n, tasks // WORKERS)) for _ in range(WORKERS)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    return time.perf_counter() - start


# --- cold start -----------------------------------------------------------------------------------


async def _first_result_toolkit(method: str = "forkserver") -> float:
    start = time.perf_counter()
    pool = toolkit.Pool(WORKERS, context=method)
    await pool.apply(tiny, (1,))
    elapsed = time.perf_counter() - start
    pool.terminate()
    await pool.join()
    return elapsed


async def _first_result_executor(method: str = "forkserver") -> float:
    start = time.perf_counter()
    executor = cf.ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context(method))
    await asyncio.wrap_future(executor.submit(tiny, 1))
    elapsed = time.perf_counter() - start
    executor.shutdown()
    return elapsed


def cold_main(which: str, loop_name: str, method: str = "forkserver") -> None:
    """In a fresh interpreter: print the seconds from a new pool to its first result."""
    body = _first_result_toolkit if which == "toolkit" else _first_result_executor
    with asyncio.Runner(loop_factory=loop_factories()[loop_name]) as runner:
        print(runner.run(body(method)))


def _cold(which: str, loop_name: str, method: str = "forkserver") -> float:
    code = (
        "from benchmarks.bench_pool import cold_main; "
        f"cold_main({which!r}, {loop_name!r}, {method!r})"
    )
    # As a user's interpreter runs: with its bytecode cache. Under
    # PYTHONDONTWRITEBYTECODE every fresh interpreter compiles the toolkit's
    # modules again (~10 ms for _pool.py alone) while the stdlib's come
    # precompiled: the comparison would measure the compiler.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.split()[-1])


def _warm_bytecode() -> None:
    """Write the bytecode caches a cold run reads (untimed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = "import toolkit._pool, toolkit._engines._worker, benchmarks.bench_pool"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=env)


# --- crash, timeout, idle -------------------------------------------------------------------------


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark: the pool did not settle")
        await asyncio.sleep(0.005)


def _settled(pool: toolkit.Pool) -> Callable[[], bool]:
    return lambda: pool.stats().idle == WORKERS


def _read_stamp(path: str) -> float:
    with open(path) as file:
        return float(file.read())


async def _crash_latency(pool: toolkit.Pool, path: str) -> float:
    await _until(_settled(pool))
    try:
        await pool.apply(stamp_then_kill, (path,))
    except toolkit.WorkerDiedError:
        now = time.perf_counter()
    else:
        raise RuntimeError("benchmark: the task did not die")
    return now - _read_stamp(path)


async def _timeout_latency(pool: toolkit.Pool, path: str) -> tuple[float, float]:
    """Seconds from the task's start, and from the call, to its TaskTimeoutError."""
    await _until(_settled(pool))
    called = time.perf_counter()
    try:
        await pool.apply(stamp_then_sleep, (path, 5.0), timeout=0.5)
    except toolkit.TaskTimeoutError:
        now = time.perf_counter()
    else:
        raise RuntimeError("benchmark: the task did not time out")
    return now - _read_stamp(path), now - called


def _cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time used by these processes (every thread), in seconds.

    Linux's /proc/<pid>/schedstat counts nanoseconds; psutil's user + system
    times count clock ticks (10 ms), too coarse for an idle process over 5 s.
    """
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as file:
                total += int(file.read().split()[0]) / 1e9
        except OSError:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


async def _idle_percent(pids: list[int], seconds: float) -> float:
    before = _cpu_seconds(pids)
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    used = _cpu_seconds(pids) - before
    return 100 * used / (time.perf_counter() - start)


# --- one loop -------------------------------------------------------------------------------------


class _Figures:
    """Every sample of one loop's run, by name."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    def median(self, key: str) -> float:
        return median(self.samples[key])

    def worst(self, key: str) -> float:
        return max(self.samples[key])


async def _applies(
    figures: _Figures, pool: toolkit.Pool, aio_pool: Any, executor: cf.ProcessPoolExecutor
) -> None:
    loop = asyncio.get_running_loop()
    contenders: dict[str, tuple[int, Callable[[int], Any]]] = {
        "apply": (APPLY_CALLS, lambda i: pool.apply(tiny, (i,))),
        "floor": (APPLY_CALLS, _nothing),
        "aiomp_apply": (AIOMP_APPLY_CALLS, lambda i: aio_pool.apply(atiny, (i,))),
        "executor_apply": (EXECUTOR_CALLS, lambda i: loop.run_in_executor(executor, tiny, i)),
    }
    for name, (count, make) in contenders.items():
        rate, stall, after = await _gathered(count, make)
        figures.add(name, rate)
        figures.add(f"{name}_stall", stall)
        figures.add(f"{name}_after", after)
    rate, stall, after = await _submitted(pool)
    figures.add("submit", rate)
    figures.add("submit_stall", stall)
    figures.add("submit_after", after)


async def _measure(quick: bool, cpu_n: int, loop_name: str) -> _Figures:
    rounds = 2 if quick else 5
    apply_rounds = 1 if quick else 3
    cpu_rounds = 1 if quick else 3
    cpu_tasks = CPU_TASKS // 4 if quick else CPU_TASKS
    repeats = 3 if quick else 10
    idle = 1.0 if quick else IDLE_SECONDS
    figures = _Figures()
    add = figures.add

    ctx = multiprocessing.get_context("forkserver")
    aiomultiprocess.set_start_method("forkserver")
    executor = cf.ProcessPoolExecutor(WORKERS, mp_context=ctx)
    loop = asyncio.get_running_loop()
    with ctx.Pool(WORKERS) as mp_pool:
        async with toolkit.Pool(WORKERS) as pool:
            async with aiomultiprocess.Pool(WORKERS) as aio_pool:
                # Warm up: every worker started, every module imported, caches filled.
                await pool.map(tiny, range(10_000))
                await asyncio.gather(*(pool.apply(tiny, (i,)) for i in range(1_000)))
                mp_pool.map(tiny, range(10_000))
                await aio_pool.map(atiny, range(200))
                await asyncio.gather(*(loop.run_in_executor(executor, tiny, i) for i in range(200)))

                for _ in range(rounds):
                    add("map", await _toolkit_map(pool))
                    add("mp_map", _mp_map(mp_pool))
                    add("aiomp_map", await _aiomp_map(aio_pool))
                for _ in range(apply_rounds):
                    await _applies(figures, pool, aio_pool, executor)

                await asyncio.sleep(0.2)  # the workers settle
                aio_pids = [os.getpid(), *(p.pid for p in aio_pool.processes if p.pid)]
                add("aiomp_idle", await _idle_percent(aio_pids, idle))
            # aiomultiprocess polls every 5 ms in this process: measure ours without it.
            await asyncio.sleep(0.2)
            pids = [os.getpid(), *(w.pid for w in pool.workers if w.state == "idle" and w.pid)]
            add("idle", await _idle_percent(pids, idle))

            await pool.map(burn, [cpu_n] * WORKERS, chunksize=1)
            for _ in range(cpu_rounds):
                add("cpu", await _toolkit_cpu(pool, cpu_n, cpu_tasks))
                add("cpu_static", _static_split(cpu_n, cpu_tasks))

            with tempfile.TemporaryDirectory() as scratch:
                for i in range(repeats):
                    add("crash", await _crash_latency(pool, os.path.join(scratch, f"c{i}")))
                for i in range(repeats):
                    started, called = await _timeout_latency(pool, os.path.join(scratch, f"t{i}"))
                    add("timeout", started)
                    add("timeout_call", called)
    executor.shutdown()

    # The forkserver is warm now; then, each in a fresh interpreter, cold ones.
    _warm_bytecode()
    for _ in range(rounds):
        add("warm", await _first_result_toolkit())
        add("warm_executor", await _first_result_executor())
    for _ in range(1 if quick else COLD_ROUNDS):
        add("cold", _cold("toolkit", loop_name))
        add("cold_executor", _cold("executor", loop_name))
        add("cold_fork", _cold("toolkit", loop_name, "fork"))
        add("cold_fork_executor", _cold("executor", loop_name, "fork"))
    add("repeats", repeats)
    add("cpu_tasks", cpu_tasks)
    add("idle_seconds", idle)
    return figures


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 0.02 else f"{seconds * 1e3:.0f} ms"


def _rows(loop_name: str, f: _Figures) -> list[list[str]]:
    m = f.median
    repeats, cpu_tasks = int(m("repeats")), int(m("cpu_tasks"))

    def applied(name: str, label: str, ratio: str) -> list[str]:
        return [
            loop_name,
            label,
            f"{m(name):,.0f}/s; stall {m(name + '_stall'):.0f} ms, "
            f"{m(name + '_after'):.1f} ms after submitting",
            ratio,
        ]

    def speed(name: str) -> str:
        return f"{m('apply') / m(name):.1f}x"

    return [
        [loop_name, f"toolkit await pool.map, {MAP_ITEMS:,} tiny", f"{m('map'):,.0f}/s", "1.00x"],
        [
            loop_name,
            "multiprocessing.Pool.map (default chunksize), sync",
            f"{m('mp_map'):,.0f}/s",
            f"{m('map') / m('mp_map'):.2f}x",
        ],
        [
            loop_name,
            f"aiomultiprocess await pool.map ({AIOMP_MAP_ITEMS:,} items)",
            f"{m('aiomp_map'):,.0f}/s",
            f"{m('map') / m('aiomp_map'):.0f}x",
        ],
        applied("apply", f"toolkit gather of {APPLY_CALLS:,} pool.apply", "1.00x"),
        applied("submit", f"toolkit {APPLY_CALLS:,} pool.submit, then gather", ""),
        applied("floor", f"floor: gather of {APPLY_CALLS:,} coroutines doing nothing", ""),
        applied(
            "aiomp_apply",
            f"aiomultiprocess gather of pool.apply ({AIOMP_APPLY_CALLS:,} calls)",
            speed("aiomp_apply"),
        ),
        applied(
            "executor_apply",
            f"gather of run_in_executor(ProcessPoolExecutor) ({EXECUTOR_CALLS:,} calls)",
            speed("executor_apply"),
        ),
        [
            loop_name,
            f"toolkit pool.map(chunksize=1), {cpu_tasks} x 20 ms CPU",
            f"{m('cpu'):.2f} s",
            "1.00x",
        ],
        [
            loop_name,
            f"static split: {WORKERS} forked processes x {cpu_tasks // WORKERS}",
            f"{m('cpu_static'):.2f} s",
            f"{m('cpu_static') / m('cpu'):.2f}x",
        ],
        [loop_name, "toolkit Pool(2) to first apply, warm forkserver", _ms(m("warm")), "1.00x"],
        [
            loop_name,
            "ProcessPoolExecutor(2) to first result, warm forkserver",
            _ms(m("warm_executor")),
            f"{m('warm') / m('warm_executor'):.2f}x the time",
        ],
        [loop_name, "toolkit Pool(2) to first apply, cold interpreter", _ms(m("cold")), "1.00x"],
        [
            loop_name,
            "ProcessPoolExecutor(2) to first result, cold interpreter",
            _ms(m("cold_executor")),
            f"{m('cold') / m('cold_executor'):.2f}x the time",
        ],
        [
            loop_name,
            "toolkit Pool(2, context='fork') to first apply, cold interpreter",
            _ms(m("cold_fork")),
            "1.00x",
        ],
        [
            loop_name,
            "ProcessPoolExecutor(2) with fork to first result, cold interpreter",
            _ms(m("cold_fork_executor")),
            f"{m('cold_fork') / m('cold_fork_executor'):.2f}x the time",
        ],
        [
            loop_name,
            f"SIGKILL in a task to WorkerDiedError ({repeats} times)",
            f"median {_ms(m('crash'))}, worst {_ms(f.worst('crash'))}",
            "",
        ],
        [
            loop_name,
            f"timeout=0.5 on a 5 s task to TaskTimeoutError ({repeats} times)",
            f"median {_ms(m('timeout'))}, worst {_ms(f.worst('timeout'))} "
            f"(from the call: {_ms(m('timeout_call'))}, worst {_ms(f.worst('timeout_call'))})",
            "",
        ],
        [
            loop_name,
            f"idle Pool(2) for {m('idle_seconds'):g} s, parent + workers",
            f"{m('idle'):.3f}% of a core",
            "",
        ],
        [
            loop_name,
            "idle aiomultiprocess Pool(2), parent + workers",
            f"{m('aiomp_idle'):.3f}% of a core",
            "",
        ],
    ]


def _ratios(report: Report, loop_name: str, f: _Figures) -> None:
    """The rows' ratios as "toolkit is N x" (for times: theirs over ours), for the chart."""
    m = f.median
    for label, kind, value in [
        ("map vs multiprocessing.Pool.map", STDLIB, m("map") / m("mp_map")),
        ("map vs aiomultiprocess", LIBRARY, m("map") / m("aiomp_map")),
        ("apply vs aiomultiprocess", LIBRARY, m("apply") / m("aiomp_apply")),
        ("apply vs run_in_executor(ProcessPoolExecutor)", STDLIB, m("apply") / m("executor_apply")),
        ("apply vs gather of no-op coroutines", FLOOR, m("apply") / m("floor")),
        ("CPU-bound map vs static split", FLOOR, m("cpu_static") / m("cpu")),
        ("start, warm forkserver, vs ProcessPoolExecutor", STDLIB, m("warm_executor") / m("warm")),
        ("start, cold, vs ProcessPoolExecutor", STDLIB, m("cold_executor") / m("cold")),
        ("start, cold, fork, vs ProcessPoolExecutor", STDLIB,
         m("cold_fork_executor") / m("cold_fork")),
    ]:  # fmt: skip
        report.ratio(loop_name, label, kind, value)


def run(quick: bool = False) -> Report:
    cpu_n = _calibrate()
    report = Report(
        "pool",
        f"Pool: {WORKERS} forkserver workers (median of {2 if quick else 5} rounds; "
        f"apply {1 if quick else 3}, CPU {1 if quick else 3}, "
        f"cold start {1 if quick else COLD_ROUNDS})",
        ["loop", "mechanism", "result", "toolkit is"],
        [],
        quick=quick,
    )
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            figures = runner.run(_measure(quick, cpu_n, loop_name))
        report.rows += _rows(loop_name, figures)
        report.figures[loop_name] = figures.samples  # every sample, by name
        _ratios(report, loop_name, figures)
    return report
