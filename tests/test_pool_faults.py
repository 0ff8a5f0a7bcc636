"""Pool faults: failed worker starts, the missing __main__ guard, unrebuildable exceptions,
a pool whose loop ended, maps kept past ``async with``, the elastic default pool, timeout=0.

Real processes only: descriptors are really exhausted (in a child script, never
in the pytest process), workers really die, scripts really lack their guard.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest
import uvloop

import toolkit
from tests import _helpers
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from multiprocessing.context import BaseContext

pytestmark = pytest.mark.timeout(60)

_ROOT = Path(__file__).resolve().parent.parent

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture
async def pool(mp_context: BaseContext) -> AsyncIterator[toolkit.Pool]:
    async with toolkit.Pool(2, context=mp_context) as pool:
        yield pool


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _run_script(path: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(_ROOT))
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=_ROOT,
        env=env,
        check=False,
    )


def _lines(output: str) -> dict[str, str]:
    """The script's "key value" lines, as a dict."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        found[key] = value
    return found


# --- 1. a worker that cannot be started: retried with a backoff, then the pool breaks -------------

# Descriptors are exhausted for real (a lowered RLIMIT_NOFILE, every free one
# taken), then the pool's only worker is crashed: its replacement cannot start.
_FD_SCRIPT = """
import asyncio, errno, faulthandler, os, resource, signal, sys, time
import toolkit

def die():
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)

def take_every_descriptor():
    held = []
    while True:
        try:
            held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as exc:
            assert exc.errno == errno.EMFILE, exc
            return held

async def main(method, case):
    pool = toolkit.Pool(1, context=method)
    print("warm", await pool.apply(abs, (-1,)), flush=True)
    held = take_every_descriptor()
    print("held", len(held), flush=True)
    try:
        await pool.apply(die)
    except toolkit.WorkerDiedError as exc:
        print("died", type(exc).__name__, flush=True)
    crashed = time.monotonic()
    if case == "transient":
        # Past the first retries (0.05, 0.1, 0.2 s after the failure), well
        # before the last one (0.4 s later): the descriptors come back in between.
        await asyncio.sleep(0.5)
        stats = pool.stats()
        live = stats.idle + stats.busy + stats.starting
        print("during", f"live={live} state={stats.state}", flush=True)
        for fd in held:
            os.close(fd)
        held = []
    waiting = [pool.apply(abs, (-2,)), pool.apply(abs, (-3,))]
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
    elapsed = time.monotonic() - crashed
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            print("outcome", f"{type(outcome).__name__} {elapsed:.3f} {outcome}", flush=True)
        else:
            print("outcome", f"value {elapsed:.3f} {outcome}", flush=True)
    try:
        later = await asyncio.wait_for(pool.apply(abs, (-4,)), 5)
    except Exception as exc:
        print("later", f"{type(exc).__name__} {exc}", flush=True)
    else:
        print("later", f"value {later}", flush=True)
    print("state", pool.stats().state, flush=True)
    print("repr", repr(pool), flush=True)
    for fd in held:
        os.close(fd)
    pool.terminate()
    await asyncio.wait_for(pool.join(), 5)

if __name__ == "__main__":
    faulthandler.dump_traceback_later(8, exit=True)  # a hang shows where, then ends
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_pool_start_failure_that_lasts_breaks_the_pool(tmp_path: Path, method: str) -> None:
    script = tmp_path / "fd_exhaustion.py"
    script.write_text(_FD_SCRIPT)
    result = _run_script(script, method, "lasting")
    out = _lines(result.stdout)
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert int(out.get("held", "0")) > 100, detail
    assert out.get("died") == "WorkerDiedError", detail
    assert "outcome" in out, detail
    # Every call waiting for the replacement worker fails, naming the cause.
    outcomes = [line for line in result.stdout.splitlines() if line.startswith("outcome ")]
    assert len(outcomes) == 2, detail
    for line in outcomes:
        _, kind, elapsed, message = line.split(" ", 3)
        assert kind == "BrokenPoolError", detail
        assert "Too many open files" in message, detail
        assert "could not be started" in message, detail
        # Retried with a backoff (0.05 + 0.1 + 0.2 + 0.4 s), not broken at the first failure,
        # and broken soon after: a regression that waits forever shows as a timeout.
        assert 0.5 <= float(elapsed) <= 2.5, detail
    later = out.get("later", "")
    assert later.startswith("BrokenPoolError"), detail
    assert "Too many open files" in later, detail
    assert out.get("state") == "broken", detail
    assert "state=broken" in out.get("repr", ""), detail
    assert result.returncode == 0, detail


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_pool_start_failure_that_passes_recovers(tmp_path: Path, method: str) -> None:
    script = tmp_path / "fd_exhaustion.py"
    script.write_text(_FD_SCRIPT)
    result = _run_script(script, method, "transient")
    out = _lines(result.stdout)
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert out.get("died") == "WorkerDiedError", detail
    # While the descriptors were held: no worker, the pool still running (retrying).
    assert out.get("during") == "live=0 state=running", detail
    outcomes = [line for line in result.stdout.splitlines() if line.startswith("outcome ")]
    assert len(outcomes) == 2, detail
    assert [line.split(" ")[1] for line in outcomes] == ["value", "value"], detail
    assert [line.split(" ")[3] for line in outcomes] == ["2", "3"], detail
    assert out.get("later") == "value 4", detail
    assert out.get("state") == "running", detail
    assert result.returncode == 0, detail


# --- 2. a script without the `if __name__ == "__main__":` guard ends, saying what to add ---------

_NO_GUARD_POOL = """
import toolkit

async def main():
    async with toolkit.Pool(2, context={method!r}) as pool:
        print(await pool.apply(abs, (-1,)))

toolkit.run(main())
"""

_NO_GUARD_TO_PROCESS = """
import os
import toolkit

async def main():
    print(await toolkit.to_process(os.getpid))

toolkit.run(main())
"""


def _check_unguarded(script: Path) -> float:
    start = time.monotonic()
    result = _run_script(script, timeout=30)
    elapsed = time.monotonic() - start
    detail = f"after {elapsed:.2f} s, status {result.returncode}\nstderr:\n{result.stderr[-4000:]}"
    assert elapsed < 10, detail
    assert result.returncode != 0, detail
    assert "if __name__ == '__main__':" in result.stderr, detail
    assert "BrokenPoolError" in result.stderr, detail
    return elapsed


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_pool_in_a_script_without_main_guard_ends_with_the_hint(
    tmp_path: Path, method: str
) -> None:
    script = tmp_path / "unguarded_pool.py"
    script.write_text(_NO_GUARD_POOL.format(method=method))
    _check_unguarded(script)


def test_to_process_in_a_script_without_main_guard_ends_with_the_hint(tmp_path: Path) -> None:
    script = tmp_path / "unguarded_to_process.py"
    script.write_text(_NO_GUARD_TO_PROCESS)
    _check_unguarded(script)


# --- 3. an exception that pickles but cannot be rebuilt: named, with the worker's traceback -------


def _check_unrebuildable(exc: BaseException, message: str, function: str) -> None:
    assert isinstance(exc, toolkit.SerializationError)
    text = str(exc)
    assert "UnrebuildableError" in text
    assert message in text
    assert isinstance(exc.__cause__, toolkit.RemoteTraceback)
    assert function in str(exc.__cause__)
    assert "UnrebuildableError" in str(exc.__cause__)


async def test_pool_apply_unrebuildable_exception_is_named(pool: toolkit.Pool) -> None:
    with pytest.raises(toolkit.SerializationError) as info:
        await pool.apply(_helpers.raise_unrebuildable, ("the real error",))
    _check_unrebuildable(info.value, "the real error", "raise_unrebuildable")
    assert await pool.apply(abs, (-5,)) == 5  # the pool goes on


async def test_pool_map_unrebuildable_exception_is_named(pool: toolkit.Pool) -> None:
    with pytest.raises(toolkit.SerializationError) as info:
        await pool.map(functools.partial(_helpers.raise_unrebuildable_on, 3), range(8), chunksize=2)
    _check_unrebuildable(info.value, "the real error at 3", "raise_unrebuildable_on")
    assert await pool.apply(abs, (-5,)) == 5
    assert await pool.map(abs, [-1, -2]) == [1, 2]


async def test_to_process_unrebuildable_exception_is_named(default_executors: None) -> None:
    with pytest.raises(toolkit.SerializationError) as info:
        await toolkit.to_process(_helpers.raise_unrebuildable, "the real error")
    _check_unrebuildable(info.value, "the real error", "raise_unrebuildable")
    assert await toolkit.to_process(abs, -5) == 5


# --- 4. a pool whose event loop ended without closing it ------------------------------------------


@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_pool_whose_loop_ended_is_terminated(tmp_path: Path, loop: str) -> None:
    factory = LOOP_FACTORIES[loop]
    started = tmp_path / "started"

    async def first() -> toolkit.Pool:
        pool = toolkit.Pool(1)
        assert await pool.apply(abs, (-1,)) == 1
        pool.apply_async(_helpers.mark_then_sleep, (str(started), 30))  # busy when the loop ends
        await wait_until(started.exists)
        assert pool.stats().busy == 1
        return pool

    with asyncio.Runner(loop_factory=factory) as runner:
        pool = runner.run(first())
    pid = int(started.read_text())

    # Outside any loop.
    assert pool.stats().state == "terminated"
    assert "state=terminated" in repr(pool)
    workers = pool.workers
    assert workers
    assert all(w.state == "dead" for w in workers), workers
    assert all(w.exit_reason is not None and "event loop" in w.exit_reason for w in workers)
    asyncio.run(wait_until(lambda: _gone(pid), 2.0))  # outside the pool's loop

    async def second() -> None:
        await asyncio.wait_for(pool.join(), 5)
        with pytest.raises(RuntimeError, match="another event loop"):
            pool.apply(abs, (-1,))

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(second())
    assert pool.stats().state == "terminated"


@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_thread_pool_whose_loop_ended_is_terminated(tmp_path: Path, loop: str) -> None:
    factory = LOOP_FACTORIES[loop]
    started = tmp_path / "started"

    async def first() -> tuple[toolkit.ThreadPool, int | None]:
        pool = toolkit.ThreadPool(1)
        assert await pool.apply(abs, (-1,)) == 1
        pool.apply_async(_helpers.mark_then_sleep, (str(started), 0.5))  # busy when the loop ends
        await wait_until(started.exists)
        assert pool.stats().busy == 1
        return pool, pool.workers[0].tid

    with asyncio.Runner(loop_factory=factory) as runner:
        pool, tid = runner.run(first())
    assert tid is not None

    assert pool.stats().state == "terminated"
    assert "state=terminated" in repr(pool)
    workers = pool.workers
    assert workers
    assert not any(w.state == "busy" for w in workers), workers
    assert pool.stats().busy == 0
    assert all(w.exit_reason is not None and "event loop" in w.exit_reason for w in workers)
    # The abandoned thread leaves once its short task returns, and nothing says busy then.
    asyncio.run(
        wait_until(
            lambda: not any(t.native_id == tid and t.is_alive() for t in threading.enumerate()),
            5.0,
        )
    )
    assert not any(w.state == "busy" for w in pool.workers), pool.workers

    async def second() -> None:
        await asyncio.wait_for(pool.join(), 5)
        with pytest.raises(RuntimeError, match="another event loop"):
            pool.apply(abs, (-1,))

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(second())
    assert pool.stats().state == "terminated"


# --- 5. maps when `async with` ends -------------------------------------------------------------


async def test_pool_kept_imap_ends_with_the_block() -> None:
    async with asyncio.timeout(10):
        async with toolkit.Pool(2) as pool:
            results = pool.imap(_helpers.slow, range(100))
            assert await anext(results) == 0
        with pytest.raises(toolkit.PoolClosedError, match="async with"):
            await anext(results)
    assert pool.stats().state == "closed"


async def test_pool_imap_being_consumed_goes_on_after_the_block() -> None:
    got: list[int] = []

    async def consume(results: toolkit.MapResult[int]) -> list[int]:
        async for value in results:
            got.append(value)  # no await here: the consumer is always waiting in the map
        return got

    async with asyncio.timeout(15):
        async with toolkit.Pool(2) as pool:
            task = asyncio.create_task(consume(pool.imap(_helpers.slow, range(30), chunksize=1)))
            await wait_until(lambda: len(got) >= 1)
        assert await task == list(range(30))


async def test_pool_map_async_started_in_the_block_completes() -> None:
    async with asyncio.timeout(15):
        async with toolkit.Pool(2) as pool:
            handle = pool.map_async(_helpers.slow, range(20), chunksize=1)
        assert await handle == list(range(20))


# --- 6. the elastic pool behind to_process --------------------------------------------------------


async def test_to_process_runs_on_a_pool_named_to_process(
    tmp_path: Path, default_executors: None
) -> None:
    started = tmp_path / "started"
    call = asyncio.create_task(toolkit.to_process(_helpers.mark_then_sleep, str(started), 30))
    try:
        await wait_until(started.exists)
        pid = int(started.read_text())
        pools = [p for p in toolkit.inspect.snapshot().pools if p.stats.name == "to_process"]
        assert len(pools) == 1, pools
        record = pools[0]
        assert record.stats.kind == "process"
        assert record.stats.state == "running"
        assert record.stats.busy == 1
        busy = [w for w in record.workers if w.state == "busy"]
        assert [w.pid for w in busy] == [pid]
        assert busy[0].task is not None
        assert busy[0].task.function.endswith("mark_then_sleep")
    finally:
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call


async def test_to_process_cancelled_while_running_kills_its_worker(
    tmp_path: Path, default_executors: None
) -> None:
    started = tmp_path / "started"
    call = asyncio.create_task(toolkit.to_process(_helpers.mark_then_sleep, str(started), 30))
    await wait_until(started.exists)
    pid = int(started.read_text())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: _gone(pid), 2.0)


@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_to_process_worker_ends_with_its_loop(loop: str, default_executors: None) -> None:
    async def main() -> int:
        return await toolkit.to_process(os.getpid)

    with asyncio.Runner(loop_factory=LOOP_FACTORIES[loop]) as runner:
        pid = runner.run(main())
    assert pid != os.getpid()
    # No shutdown call: the loop's end took it.
    asyncio.run(wait_until(lambda: _gone(pid), 5.0))


@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_pool_of_an_ended_loop_with_no_worker_left_leaves_snapshots(loop: str) -> None:
    # Alive past its loop (held here; on 3.12 a reference cycle held to_process's
    # pool the same way), a pool where nothing runs any more is not listed.
    def listed() -> int:
        return [p.stats.name for p in toolkit.inspect.snapshot().pools].count("ended-loop")

    async def main() -> toolkit.Pool:
        pool = toolkit.Pool(1, idle_timeout=0.1, name="ended-loop")
        assert await pool.apply(abs, (-1,)) == 1
        stats = pool.stats
        await wait_until(lambda: stats().idle + stats().busy + stats().stopping == 0, 5.0)
        assert listed() == 1  # an elastic pool with no worker, on a live loop: listed
        return pool

    with asyncio.Runner(loop_factory=LOOP_FACTORIES[loop]) as runner:
        pool = runner.run(main())
    assert listed() == 0
    assert pool.stats().workers_started == 1


async def test_pool_elastic_starts_workers_on_demand_and_lets_idle_ones_go() -> None:
    def live(stats: toolkit.inspect.PoolStats) -> int:
        return stats.idle + stats.busy + stats.starting

    async with asyncio.timeout(20):
        async with toolkit.Pool(2, idle_timeout=0.3) as pool:
            assert live(pool.stats()) == 0
            await asyncio.sleep(0.1)
            assert live(pool.stats()) == 0  # bound to the loop: still no worker
            assert pool.stats().workers_started == 0

            pids = set(
                await asyncio.gather(
                    pool.apply(_helpers.sleep_pid, (0.3,)), pool.apply(_helpers.sleep_pid, (0.3,))
                )
            )
            done = time.monotonic()
            assert len(pids) == 2
            assert pool.stats().workers_started == 2

            await wait_until(lambda: live(pool.stats()) == 0, 5.0)
            idle_for = time.monotonic() - done
            assert idle_for >= 0.2, f"idle workers left after {idle_for:.3f} s, not ~0.3 s"
            for pid in pids:
                await wait_until(functools.partial(_gone, pid), 2.0)

            again = await pool.apply(os.getpid)
            assert again not in pids
            assert pool.stats().workers_started == 3


# --- 7. a task timeout of 0 or NaN is refused at the call -----------------------------------------


@pytest.mark.parametrize("timeout", [0, 0.0, float("nan")])
def test_pool_timeout_zero_or_nan_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="> 0"):
        toolkit.Pool(1, timeout=timeout)
    with pytest.raises(ValueError, match="> 0"):
        toolkit.ThreadPool(1, timeout=timeout)


async def test_pool_apply_timeout_zero_or_nan_is_refused() -> None:
    async with toolkit.Pool(1) as pool:
        for timeout in (0, 0.0, float("nan")):
            with pytest.raises(ValueError, match="> 0"):
                pool.apply(abs, (-1,), timeout=timeout)
            with pytest.raises(ValueError, match="> 0"):
                pool.apply_async(abs, (-1,), timeout=timeout)
        assert pool.stats().submitted == 0
        assert await pool.apply(abs, (-1,), timeout=5) == 1


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), ("1", TypeError)],
)
def test_pool_idle_timeout_bad_values_are_refused_at_the_call(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="idle_timeout must be a number"):
        toolkit.Pool(1, idle_timeout=value)  # type: ignore[arg-type]
    with pytest.raises(error, match="idle_timeout must be a number"):
        toolkit.ThreadPool(1, idle_timeout=value)  # type: ignore[arg-type]
