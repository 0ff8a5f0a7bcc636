"""Awaitable multiprocessing objects against blocking calls and aioprocessing.

In one run, per loop:

* ``Queue.get``: a producer process puts 200,000 small items; the parent
  takes them with ``await q.get()`` (toolkit), a plain blocking ``q.get()``
  loop, ``await loop.run_in_executor(None, q.get)`` (what people write), and
  aioprocessing's ``await q.coro_get()`` (the best existing library; fewer
  items, reported as a rate).
* ``Pipe.recv``: the same with a child sending on a pipe.
* wake-up latency across processes (p50, p99, and every sample for the
  chart): a child sets an ``Event``, notifies a ``Condition`` or puts an
  item on a ``Queue`` the parent awaits; against the raw floor, a byte
  written to a pipe whose read end the loop watches with ``add_reader``.
* idle: 1,000 coroutines waiting on a queue and 1,000 on an event; CPU used
  by the whole process meanwhile.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from typing import TYPE_CHECKING, Any

import psutil

import toolkit
from benchmarks._report import FLOOR as FLOOR_KIND, LIBRARY, STDLIB, Report, quantiles, rounded
from benchmarks._util import loop_factories

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ITEMS = 200_000
SLOW_ITEMS = 5_000  # for the per-call baselines
ROUNDS = 3
BATCH = 25  # pings per turn: the contenders alternate
PINGS = 500


# --- children (top level: spawn and forkserver import them) ----------------------------------


def _produce(q: Any, count: int) -> None:
    plain = q.sync if hasattr(q, "sync") else q
    for i in range(count):
        plain.put(i)
    plain.close()
    plain.join_thread()


def _send(conn: Any, count: int) -> None:
    plain = conn.sync if hasattr(conn, "sync") else conn
    for i in range(count):
        plain.send(i)
    plain.close()


def _ping(kind: str, target: Any, go: Any, times: Any, rounds: int) -> None:
    """Wake the parent's waiter once per go: stamp the clock, then set, put, notify or write."""
    for _ in range(rounds):
        go.recv()
        if kind == "condition":
            with target.sync:  # the stdlib's notify needs the lock: stamp once it is held
                times.send(time.perf_counter())
                target.sync.notify()
            continue
        times.send(time.perf_counter())
        if kind == "event":
            target.sync.set()
        elif kind == "queue":
            target.sync.put(None)
        else:
            os.write(target.fileno(), b"x")


# --- measurements -----------------------------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    return toolkit.get_context()


async def _queue_rates() -> dict[str, float]:
    ctx = _context()
    rates: dict[str, list[float]] = {
        "toolkit": [],
        "blocking": [],
        "executor": [],
        "aioprocessing": [],
    }
    loop = asyncio.get_running_loop()
    for _ in range(ROUNDS):
        q: toolkit.Queue[int] = toolkit.Queue(context=ctx)
        async with toolkit.Process(target=_produce, args=(q, ITEMS), context=ctx):
            start = time.perf_counter()
            for _ in range(ITEMS):
                await q.get()
            rates["toolkit"].append(ITEMS / (time.perf_counter() - start))

        plain = ctx.Queue()
        child = ctx.Process(target=_produce, args=(plain, ITEMS))  # type: ignore[attr-defined]
        child.start()
        start = time.perf_counter()
        for _ in range(ITEMS):
            plain.get()
        rates["blocking"].append(ITEMS / (time.perf_counter() - start))
        child.join()

        plain = ctx.Queue()
        child = ctx.Process(target=_produce, args=(plain, SLOW_ITEMS))  # type: ignore[attr-defined]
        child.start()
        start = time.perf_counter()
        for _ in range(SLOW_ITEMS):
            await loop.run_in_executor(None, plain.get)
        rates["executor"].append(SLOW_ITEMS / (time.perf_counter() - start))
        child.join()

        rates["aioprocessing"].append(await _aioprocessing_queue(ctx))
    return {name: statistics.median(values) for name, values in rates.items() if values}


async def _aioprocessing_queue(ctx: Any) -> float:
    try:
        import aioprocessing
    except ImportError:
        return float("nan")
    q = aioprocessing.AioQueue(context=ctx)
    child = ctx.Process(target=_produce, args=(q._obj, SLOW_ITEMS))
    child.start()
    start = time.perf_counter()
    for _ in range(SLOW_ITEMS):
        await q.coro_get()
    rate = SLOW_ITEMS / (time.perf_counter() - start)
    child.join()
    return rate


async def _pipe_rates() -> dict[str, float]:
    ctx = _context()
    rates: dict[str, list[float]] = {"toolkit": [], "blocking": [], "aioprocessing": []}
    for _ in range(ROUNDS):
        ours, theirs = toolkit.Pipe()
        async with toolkit.Process(target=_send, args=(theirs, ITEMS), context=ctx):
            theirs.close()
            start = time.perf_counter()
            for _ in range(ITEMS):
                await ours.recv()
            rates["toolkit"].append(ITEMS / (time.perf_counter() - start))
        ours.close()

        mine, other = multiprocessing.Pipe()
        child = ctx.Process(target=_send, args=(other, ITEMS))  # type: ignore[attr-defined]
        child.start()
        other.close()
        start = time.perf_counter()
        for _ in range(ITEMS):
            mine.recv()
        rates["blocking"].append(ITEMS / (time.perf_counter() - start))
        child.join()
        mine.close()

        try:
            import aioprocessing
        except ImportError:
            continue
        a, b = aioprocessing.AioPipe()
        child = ctx.Process(target=_send, args=(b._obj, SLOW_ITEMS))  # type: ignore[attr-defined]
        child.start()
        start = time.perf_counter()
        for _ in range(SLOW_ITEMS):
            await a.coro_recv()
        rates["aioprocessing"].append(SLOW_ITEMS / (time.perf_counter() - start))
        child.join()
    return {name: statistics.median(values) for name, values in rates.items() if values}


# The wake-ups measured, by kind: what the parent awaits.
WAKE_LABELS = {
    "event": "toolkit Event.wait",
    "condition": "toolkit Condition.wait",
    "queue": "toolkit Queue.get",
    "pipe": "raw pipe byte + add_reader",
}
FLOOR = "pipe"


async def _wake_samples(kinds: tuple[str, ...]) -> dict[str, list[float]]:
    """Per-wake-up latencies in seconds, by label: a child wakes the parent's waiter.

    The kinds take turns of BATCH pings, so load drift hits them alike. Each
    child stamps ``time.perf_counter()`` (system-wide monotonic clock) just
    before it sets, puts, notifies or writes; the parent's waiting task
    stamps when it resumes.
    """
    ctx = _context()
    loop = asyncio.get_running_loop()
    # A raw os.pipe does not reach a spawned child: a multiprocessing one does.
    reader, writer = multiprocessing.Pipe(duplex=False)
    r = reader.fileno()
    event = toolkit.Event(context=ctx)
    condition = toolkit.Condition(context=ctx)
    queue: toolkit.Queue[None] = toolkit.Queue(context=ctx)
    targets = {"event": event, "condition": condition, "queue": queue, "pipe": writer}
    samples: dict[str, list[float]] = {WAKE_LABELS[kind]: [] for kind in kinds}
    missed = 0

    async def wait_condition() -> bool:
        async with condition:
            # A timeout, not a hang, should the notify ever come before the wait.
            return await condition.wait(timeout=5.0)

    async def wait_pipe() -> None:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(r, _resolve, readable)
        try:
            await readable
        finally:
            loop.remove_reader(r)

    waits: dict[str, Callable[[], Awaitable[object]]] = {
        "event": event.wait,
        "condition": wait_condition,
        "queue": queue.get,
        "pipe": wait_pipe,
    }
    channels = {}
    children = []
    for kind in kinds:
        go, go_child = multiprocessing.Pipe()
        times, times_child = multiprocessing.Pipe()
        channels[kind] = (go, times)
        child = ctx.Process(  # type: ignore[attr-defined]
            target=_ping, args=(kind, targets[kind], go_child, times_child, PINGS)
        )
        child.start()
        go_child.close()
        times_child.close()
        children.append(child)

    async def ping(kind: str) -> None:
        nonlocal missed
        if kind == "event":
            event.clear()
        go, times = channels[kind]
        waiter = asyncio.ensure_future(_woken_at(waits[kind]()))
        await asyncio.sleep(0.002)  # the waiter is parked
        go.send(None)
        woke, result = await waiter
        sent = times.recv()
        if kind == "pipe":
            os.read(r, 1)
        if result is False:  # the condition's wait timed out: no wake-up to count
            missed += 1
            return
        samples[WAKE_LABELS[kind]].append(woke - sent)

    try:
        for _ in range(PINGS // BATCH):
            for kind in kinds:
                for _ in range(BATCH):
                    await ping(kind)
    finally:
        for go, times in channels.values():  # first: a child still waiting for go ends
            go.close()
            times.close()
        for child in children:
            child.join(10)
        reader.close()
        writer.close()
        queue.close()
    if missed:
        print(f"ipc: {missed} condition wake-ups missed (notify before wait), not counted")
    return samples


async def _event_latency() -> dict[str, tuple[float, float]]:
    """The Event wake-up against the raw floor, (p50, p99) in microseconds (bench_backends)."""
    samples = await _wake_samples(("event", FLOOR))
    return {label: _p50_p99(values) for label, values in samples.items()}


async def _woken_at(wait: Awaitable[object]) -> tuple[float, object]:
    """Await, in a task of its own, and say when it woke (every contender alike)."""
    result = await wait
    return time.perf_counter(), result


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(0.99 * (len(ordered) - 1))] * 1e6


async def _idle_cpu(seconds: float) -> float:
    q: toolkit.Queue[int] = toolkit.Queue()
    event = toolkit.Event()
    waiters = [asyncio.ensure_future(q.get()) for _ in range(1000)]
    waiters += [asyncio.ensure_future(event.wait()) for _ in range(1000)]
    await asyncio.sleep(0.2)
    process = psutil.Process()
    before = process.cpu_times()
    await asyncio.sleep(seconds)
    after = process.cpu_times()
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    q.close()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / seconds


def run(quick: bool = False) -> Report:
    global ROUNDS, PINGS
    if quick:
        ROUNDS, PINGS = 1, 50
    report = Report(
        "ipc",
        f"IPC: {ITEMS:,} small items per round (median of {ROUNDS} rounds), {PINGS} wake-ups each",
        ["loop", "mechanism", "result", "toolkit is"],
        [],
        quick=quick,
        series={"wakeups": {}},
    )
    rows = report.rows
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            queue_rates = runner.run(_queue_rates())
            pipe_rates = runner.run(_pipe_rates())
            wakeups = runner.run(_wake_samples(tuple(WAKE_LABELS)))
            idle = runner.run(_idle_cpu(2.0 if quick else 10.0))
            runner.run(toolkit.shutdown_default_executors())
        latency = {label: _p50_p99(values) for label, values in wakeups.items()}
        report.figures[loop_name] = {
            "queue_per_s": queue_rates,
            "recv_per_s": pipe_rates,
            "wakeup_p50_p99_us": latency,
            "idle_cpu_percent": idle,
        }
        # Microseconds to 0.01: the samples themselves, for the distribution chart.
        report.series["wakeups"][loop_name] = {
            label: rounded(quantiles([v * 1e6 for v in values]), 2)
            for label, values in wakeups.items()
        }
        ours = queue_rates["toolkit"]
        for name, label, kind in [
            ("toolkit", "toolkit await Queue.get", ""),
            ("blocking", "blocking Queue.get loop", STDLIB),
            ("executor", "await run_in_executor(None, q.get)", STDLIB),
            ("aioprocessing", "aioprocessing await coro_get", LIBRARY),
        ]:
            rate = queue_rates[name]
            rows.append([loop_name, label, f"{rate:,.0f}/s", f"{ours / rate:.2f}x"])
            if kind:
                report.ratio(loop_name, f"Queue.get vs {label}", kind, ours / rate)
        ours = pipe_rates["toolkit"]
        for name, label, kind in [
            ("toolkit", "toolkit await Connection.recv", ""),
            ("blocking", "blocking Connection.recv loop", STDLIB),
            ("aioprocessing", "aioprocessing await coro_recv", LIBRARY),
        ]:
            if name in pipe_rates:
                rate = pipe_rates[name]
                rows.append([loop_name, label, f"{rate:,.0f}/s", f"{ours / rate:.2f}x"])
                if kind:
                    report.ratio(loop_name, f"Connection.recv vs {label}", kind, ours / rate)
        floor_p50 = latency[WAKE_LABELS[FLOOR]][0]
        for label, (p50, p99) in latency.items():
            ratio = ""
            if label != WAKE_LABELS[FLOOR]:
                ratio = f"{p50 / floor_p50:.2f}x the floor"
                what = f"{label.removeprefix('toolkit ')} wake-up p50 vs raw pipe byte"
                report.ratio(loop_name, what, FLOOR_KIND, floor_p50 / p50)
            rows.append(
                [loop_name, f"wake-up, {label}", f"p50 {p50:.0f} us, p99 {p99:.0f} us", ratio]
            )
        waiting = "idle: 1,000 queue getters + 1,000 event waiters"
        rows.append([loop_name, waiting, f"{idle:.3f}% CPU", ""])
    return report
