"""Picklable, top-level functions for worker processes and threads."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def identity(x: Any) -> Any:
    return x


def pid() -> int:
    return os.getpid()


class CustomError(Exception):
    """An exception type of the tests' own, to check that types survive."""


def fail(message: str) -> None:
    raise CustomError(message)


def fail_on(bad: int, x: int) -> int:
    if x == bad:
        raise CustomError(f"bad input {x}")
    return x


def return_lock() -> object:
    return threading.Lock()


class Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("this exception refuses to be pickled")


def raise_unpicklable() -> None:
    raise Unpicklable("boom")


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def append_line(path: str, text: str) -> str:
    with open(path, "a", encoding="utf-8") as file:
        file.write(text + "\n")
    return text


def wait_for_file(path: str, timeout: float = 30.0) -> bool:
    """Block until path exists (a cross-process gate without shared objects)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def mark_then_wait(started: str, gate: str, timeout: float = 30.0) -> bool:
    """Say "I am running" by creating started, then block until gate exists."""
    with open(started, "w", encoding="utf-8"):
        pass
    return wait_for_file(gate, timeout)


def exit_with(code: int) -> None:
    import sys

    sys.exit(code)


def block_forever() -> None:
    import threading

    threading.Event().wait()


def echo_sync(conn: Any, count: int) -> None:
    """A plain child: receive count objects on conn.sync and send each back, doubled."""
    plain = conn.sync
    for _ in range(count):
        plain.send(plain.recv() * 2)
    plain.close()


def echo_async(conn: Any, count: int) -> None:
    """A child with its own event loop, awaiting the same object."""
    import toolkit

    async def main() -> None:
        for _ in range(count):
            await conn.send(await conn.recv() * 2)

    toolkit.run(main())
    conn.close()


def send_big(conn: Any, count: int, size: int) -> None:
    payload = bytes(range(256)) * (size // 256)
    for i in range(count):
        conn.sync.send_bytes(i.to_bytes(4, "big") + payload)
    conn.close()


def produce_sync(q: Any, count: int, size: int = 0) -> None:
    """A plain child putting count items with the stdlib API (q.sync)."""
    plain = q.sync
    pad = b"x" * size
    for i in range(count):
        plain.put((i, pad) if size else i)
    plain.close()
    plain.join_thread()


def consume_sync(q: Any, out: Any, count: int) -> None:
    """A plain child taking count items and reporting their sum on out."""
    total = sum(q.sync.get(timeout=30) for _ in range(count))
    out.sync.put(total)
    out.sync.close()
    out.sync.join_thread()


def relay_async(inbox: Any, outbox: Any, count: int) -> None:
    """A child with its own loop: await count items, put each back doubled."""
    import toolkit

    async def main() -> None:
        async with outbox:
            for _ in range(count):
                await outbox.put(await inbox.get(timeout=30) * 2)

    toolkit.run(main())


def get_one_big(q: Any, out: Any) -> None:
    """A plain child doing a blocking get of a large item on a queue the parent watches."""
    item = q.sync.get(timeout=30)
    out.sync.put(len(item))
    out.sync.close()
    out.sync.join_thread()


def work_and_mark_done(q: Any, count: int) -> None:
    plain = q.sync
    for _ in range(count):
        plain.get(timeout=30)
        plain.task_done()


def hold_until(lock: Any, started: str, gate: str) -> None:
    """A plain child: take the lock (stdlib API), say so, hold it until gate exists."""
    with lock.sync:
        with open(started, "w", encoding="utf-8"):
            pass
        wait_for_file(gate)


def set_event(event: Any) -> None:
    event.sync.set()


def increment_many(value: Any, times: int) -> None:
    for _ in range(times):
        with value.sync.get_lock():
            value.sync.value += 1


def fill_array(array: Any) -> None:
    for i in range(len(array)):
        array[i] = i * i


def die_holding_read_lock(q: Any) -> None:
    """Take the queue's internal read lock, then die without releasing it."""
    import os

    q.sync._rlock.acquire()
    os._exit(0)


def condition_wait(cond: Any, started: str) -> None:
    """A plain child: wait on the condition (stdlib API); exit 0 if notified, 1 on timeout."""
    import sys

    with cond.sync:
        with open(started, "w", encoding="utf-8"):
            pass
        woken = cond.sync.wait(timeout=30)
    sys.exit(0 if woken else 1)


def condition_notify_all(cond: Any) -> None:
    with cond.sync:
        cond.sync.notify_all()


def barrier_wait(barrier: Any) -> None:
    """A plain child meeting coroutines at a barrier (stdlib API)."""
    barrier.sync.wait(timeout=30)


def fork_child_uses_everything(q: Any, event: Any, lock: Any, value: Any, conn: Any) -> None:
    """A fork child: every toolkit object, inherited rather than pickled, through .sync."""
    with lock.sync:
        value.sync.value += 1
    q.sync.put("from child")
    conn.sync.send("hello")
    event.sync.set()
    q.sync.close()
    q.sync.join_thread()


# --- pool workers ---------------------------------------------------------------------------------


def os_exit(code: int) -> None:
    os._exit(code)


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(10)  # not reached: the signal ends us first


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def sleep_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def mark_then_sleep(started: str, seconds: float) -> int:
    """Say "I run" by creating started (holding our pid), then sleep (to cancel, kill, time out)."""
    with open(started + ".tmp", "w", encoding="utf-8") as file:
        file.write(str(os.getpid()))
    os.rename(started + ".tmp", started)  # atomic: a reader never sees it empty
    time.sleep(seconds)
    return os.getpid()


def grandchild_then_sleep(pidfile: str, seconds: float) -> None:
    """Start a `sleep` subprocess, write its pid, then sleep: a timeout must kill both."""
    import subprocess

    child = subprocess.Popen(["sleep", "1000"])
    with open(pidfile + ".tmp", "w", encoding="utf-8") as file:
        file.write(str(child.pid))
    os.rename(pidfile + ".tmp", pidfile)
    time.sleep(seconds)


_GLOBAL: list[Any] = []


def set_global(value: Any) -> None:
    _GLOBAL.append(value)


def get_global(_: Any = None) -> Any:
    return _GLOBAL[-1] if _GLOBAL else None


def exit_in_initializer() -> None:
    os._exit(1)


def print_lines(count: int) -> int:
    import sys

    for i in range(count):
        print(f"out {i}")  # noqa: T201 - the output capture under test
        print(f"err {i}", file=sys.stderr)  # noqa: T201
    return count


def _refuse_to_load() -> None:
    raise CustomError("this object refuses to be unpickled")


class LoadsBadly:
    """Pickles fine; unpickling it raises (in whichever process loads it)."""

    def __reduce__(self) -> Any:
        return (_refuse_to_load, ())


def return_loads_badly() -> LoadsBadly:
    return LoadsBadly()


def size_of(data: bytes) -> int:
    return len(data)


def make_bytes(size: int) -> bytes:
    return b"x" * size


def touch(path: str) -> None:
    with open(path, "w", encoding="utf-8"):
        pass


async def async_square(x: int) -> int:
    """A coroutine function as a task: the worker runs it in a loop of its own."""
    import asyncio

    await asyncio.sleep(0)
    return x * x


# --- a task's SystemExit and KeyboardInterrupt (test_task_exit.py) ------------------------------


def exit_on(bad: int, x: int) -> int:
    """sys.exit(x) for the bad item, x for the others: a map with one exiting item."""
    import sys

    if x == bad:
        sys.exit(x)
    return x


def interrupt() -> None:
    """What Ctrl-C in reused CLI code looks like from inside a task."""
    raise KeyboardInterrupt


def thread_id() -> int:
    return threading.get_ident()


# --- pool faults (test_pool_faults.py) -----------------------------------------------------------


class UnrebuildableError(Exception):
    """Pickles, but cannot be rebuilt: pickle calls cls(*args), and args holds one of two."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def raise_unrebuildable(message: str) -> None:
    raise UnrebuildableError(message, 7)


def raise_unrebuildable_on(bad: int, x: int) -> int:
    if x == bad:
        raise UnrebuildableError(f"the real error at {x}", x)
    return x


def slow(x: Any) -> Any:
    """A map item of about 50 ms."""
    time.sleep(0.05)
    return x


# --- contract suites (test_contract_*.py) --------------------------------------------------------


def relay_doubled(inbox: Any, outbox: Any, count: int) -> None:
    """A plain child: take count items from inbox, put each doubled on outbox (the .sync objects).

    Any queue-like: a toolkit queue's .sync is the multiprocessing queue, a
    manager proxy's the stdlib proxy. No timeout: SimpleQueue.get takes none
    (the parent terminates this child if it gives up).
    """
    get, put = inbox.sync.get, outbox.sync.put
    for _ in range(count):
        put(get() * 2)


def late_for_small(x: int) -> int:
    """Return x, later the smaller it is (0 last of 0..4): a map must keep order anyway."""
    time.sleep(0.02 * max(0, 5 - x))
    return x
