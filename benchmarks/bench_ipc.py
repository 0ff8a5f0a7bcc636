"""Awaitable multiprocessing objects against blocking calls and aioprocessing.

In one run, per loop:

* ``Queue.get``: a producer process puts 200,000 small items; the parent
  takes them with ``await q.get()`` (toolkit), a plain blocking ``q.get()``
  loop, ``await loop.run_in_executor(None, q.get)`` (what people write), and
  aioprocessing's ``await q.coro_get()`` (the best existing library; fewer
  items, reported as a rate).
* ``Pipe.recv``: the same with a child sending on a pipe.
* ``Event.wait`` wake-up latency across processes (p50, p99): a child sets
  the event; against the raw floor, a byte written to a pipe whose read end
  the loop watches with ``add_reader``.
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
from benchmarks._util import loop_factories, table

if TYPE_CHECKING:
    from collections.abc import Awaitable

ITEMS = 200_000
SLOW_ITEMS = 5_000  # for the per-call baselines
ROUNDS = 3
BATCH = 25  # pings per turn: the two contenders alternate
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


def _ping_event(event: Any, go: Any, times: Any, rounds: int) -> None:
    for _ in range(rounds):
        go.recv()
        times.send(time.perf_counter())
        event.sync.set()


def _ping_pipe(writer: Any, go: Any, times: Any, rounds: int) -> None:
    for _ in range(rounds):
        go.recv()
        times.send(time.perf_counter())
        os.write(writer.fileno(), b"x")


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


async def _event_latency() -> dict[str, tuple[float, float]]:
    """Both contenders in turns of BATCH pings, so load drift hits them alike."""
    ctx = _context()
    loop = asyncio.get_running_loop()
    event = toolkit.Event(context=ctx)
    ev_go, ev_go_child = multiprocessing.Pipe()
    ev_times, ev_times_child = multiprocessing.Pipe()
    pipe_go, pipe_go_child = multiprocessing.Pipe()
    pipe_times, pipe_times_child = multiprocessing.Pipe()
    # A raw os.pipe does not reach a spawned child: a multiprocessing one does.
    reader, writer = multiprocessing.Pipe(duplex=False)
    r = reader.fileno()
    ours: list[float] = []
    raw: list[float] = []

    async def ping_event() -> None:
        event.clear()
        waiter = asyncio.ensure_future(_woken_at(event.wait()))
        await asyncio.sleep(0.002)  # the waiter is parked
        ev_go.send(None)
        woke = await waiter
        ours.append(woke - ev_times.recv())

    async def ping_pipe() -> None:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(r, _resolve, readable)
        waiter = asyncio.ensure_future(_woken_at(readable))
        await asyncio.sleep(0.002)
        pipe_go.send(None)
        woke = await waiter
        loop.remove_reader(r)
        os.read(r, 1)
        raw.append(woke - pipe_times.recv())

    pipe_child = ctx.Process(  # type: ignore[attr-defined]
        target=_ping_pipe, args=(writer, pipe_go_child, pipe_times_child, PINGS)
    )
    pipe_child.start()
    args = (event, ev_go_child, ev_times_child, PINGS)
    async with toolkit.Process(target=_ping_event, args=args, context=ctx):
        for _ in range(PINGS // BATCH):
            for _ in range(BATCH):
                await ping_event()
            for _ in range(BATCH):
                await ping_pipe()
    pipe_child.join()
    for conn in (reader, writer, ev_go, ev_go_child, ev_times, ev_times_child):
        conn.close()
    for conn in (pipe_go, pipe_go_child, pipe_times, pipe_times_child):
        conn.close()
    return {
        "toolkit Event.wait": _p50_p99(ours),
        "raw pipe byte + add_reader": _p50_p99(raw),
    }


async def _woken_at(wait: Awaitable[object]) -> float:
    """Await, in a task of its own, and say when it woke (both contenders alike)."""
    await wait
    return time.perf_counter()


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


def run(quick: bool = False) -> str:
    global ROUNDS, PINGS
    if quick:
        ROUNDS, PINGS = 1, 50
    rows = []
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            queue_rates = runner.run(_queue_rates())
            pipe_rates = runner.run(_pipe_rates())
            latency = runner.run(_event_latency())
            idle = runner.run(_idle_cpu(2.0 if quick else 10.0))
            runner.run(toolkit.shutdown_default_executors())
        ours = queue_rates["toolkit"]
        for name, label in [
            ("toolkit", "toolkit await Queue.get"),
            ("blocking", "blocking Queue.get loop"),
            ("executor", "await run_in_executor(None, q.get)"),
            ("aioprocessing", "aioprocessing await coro_get"),
        ]:
            rate = queue_rates[name]
            rows.append([loop_name, label, f"{rate:,.0f}/s", f"{ours / rate:.2f}x"])
        ours = pipe_rates["toolkit"]
        for name, label in [
            ("toolkit", "toolkit await Connection.recv"),
            ("blocking", "blocking Connection.recv loop"),
            ("aioprocessing", "aioprocessing await coro_recv"),
        ]:
            if name in pipe_rates:
                rate = pipe_rates[name]
                rows.append([loop_name, label, f"{rate:,.0f}/s", f"{ours / rate:.2f}x"])
        ours_p50 = latency["toolkit Event.wait"][0]
        for label, (p50, p99) in latency.items():
            ratio = f"{ours_p50 / p50:.2f}x slower" if label.startswith("raw") else ""
            rows.append(
                [loop_name, f"wake-up, {label}", f"p50 {p50:.0f} us, p99 {p99:.0f} us", ratio]
            )
        waiting = "idle: 1,000 queue getters + 1,000 event waiters"
        rows.append([loop_name, waiting, f"{idle:.3f}% CPU", ""])
    return table(
        f"IPC: {ITEMS:,} small items per round (median of {ROUNDS} rounds), {PINGS} wake-ups",
        ["loop", "mechanism", "result", "toolkit is"],
        rows,
    )
