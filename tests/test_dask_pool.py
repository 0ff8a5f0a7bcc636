"""DaskPool: the toolkit's Pool on a real Dask cluster.

The cluster is made of the real command-line programs (``dask scheduler``,
``dask worker`` with its nannies), on 127.0.0.1, started once for the
module: workers are killed with SIGKILL mid-task and restarted by their
nannies as in production. The scheduler's own death gets a cluster of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers
from tests._dask_helpers import stop_programs
from tests._waiting import wait_until


def _gone(pid: int) -> bool:
    """The process ended (the CLI workers run on this machine: we can look)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


if TYPE_CHECKING:
    from collections.abc import Iterator

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent


class CliCluster:
    """``dask scheduler`` and ``dask worker`` processes, as an operator runs them."""

    def __init__(self, directory: Path, workers: int = 2) -> None:
        self.directory = directory
        self.file = directory / "scheduler.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        dask = str(Path(sys.executable).with_name("dask"))
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(self.file)],
            cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.workers = subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(self.file), "--host", "127.0.0.1",
             "--nworkers", str(workers), "--nthreads", "1", "--dashboard-address", "127.0.0.1:0",
             "--local-directory", str(directory), "--death-timeout", "10"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = distributed.Client(scheduler_file=str(self.file), timeout=60)
        try:
            client.wait_for_workers(workers, timeout=60)
            self.address: str = client.scheduler.address
        finally:
            client.close()

    def worker_pids(self) -> dict[str, int]:
        """Each live worker's pid (a worker that is dying is left out)."""
        with distributed.Client(self.address, timeout=30) as client:
            pids = client.run(os.getpid, on_error="return")
        return {address: pid for address, pid in pids.items() if isinstance(pid, int)}

    def stop(self) -> None:
        stop_programs(self.workers, self.scheduler)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    # Expected task failures and kills are logged by Dask; they are tested, not news.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    running = CliCluster(tmp_path_factory.mktemp("dask-cli"))
    try:
        yield running
    finally:
        running.stop()


async def _settled(pool: toolkit.DaskPool, workers: int = 2) -> None:
    """Wait until the pool has a ready worker per cluster worker (after restarts)."""
    await wait_until(
        lambda: sum(w.state in ("idle", "busy") for w in pool.workers) >= workers,
        timeout=60,
        message="the pool has a worker per cluster worker",
    )


async def test_dask_pool_runs_the_pool_api_on_the_cluster(cluster: CliCluster) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        assert await pool.apply(_helpers.add, (2,), {"b": 3}) == 5
        assert await pool.map(_helpers.square, range(50)) == [i * i for i in range(50)]
        assert await pool.starmap(_helpers.add, [(1, 2), (3, 4)]) == [3, 7]
        assert [x async for x in pool.imap(_helpers.square, range(20))] == [
            i * i for i in range(20)
        ]
        unordered = [x async for x in pool.imap_unordered(_helpers.square, range(20))]
        assert sorted(unordered) == [i * i for i in range(20)]
        future = pool.submit(_helpers.pid)
        assert await future != os.getpid()
        result = pool.apply_async(_helpers.square, (7,))
        assert await result.get(timeout=30) == 49
        factor = 3
        assert await pool.apply(lambda x: x * factor, (14,)) == 42  # by value (cloudpickle)
        assert pool.scheduler_address == cluster.address


async def test_dask_pool_errors_keep_their_type_and_bad_input_fails_at_the_call(
    cluster: CliCluster,
) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        with pytest.raises(_helpers.CustomError, match="remote") as info:
            await pool.apply(_helpers.fail, ("remote",))
        assert isinstance(info.value.__cause__, toolkit.RemoteTraceback)
        assert "in fail" in str(info.value.__cause__)
        with pytest.raises(toolkit.SerializationError, match="argument 0"):
            pool.apply_async(_helpers.identity, (threading.Lock(),))
        with pytest.raises(_helpers.CustomError):
            await pool.starmap(_helpers.fail_on, [(3, i) for i in range(10)])
        assert await pool.apply(_helpers.square, (3,)) == 9  # the pool goes on
        stats = pool.stats()
        assert stats.failed >= 2
        assert stats.completed >= 1


async def test_dask_pool_identical_calls_all_run(cluster: CliCluster) -> None:
    import uuid

    async with toolkit.DaskPool(cluster.address) as pool:
        first, second = await asyncio.gather(pool.apply(uuid.uuid4), pool.apply(uuid.uuid4))
    assert first != second  # pure=False: Dask would merge them otherwise


async def test_dask_pool_map_batches_tiny_tasks(cluster: CliCluster) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        assert await pool.map(_helpers.square, range(20_000)) == [i * i for i in range(20_000)]
        # Chunks, not 20,000 Dask tasks.
        assert pool.stats().submitted < 2_000


async def test_dask_pool_imap_is_lazy_on_an_infinite_input(cluster: CliCluster) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        seen = []
        async for value in pool.imap(_helpers.square, itertools.count()):
            seen.append(value)
            if len(seen) == 30:
                break
        assert seen == [i * i for i in range(30)]


async def test_dask_pool_timeout_restarts_the_worker_and_the_pool_goes_on(
    cluster: CliCluster, tmp_path: Path
) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        await _settled(pool)
        started = tmp_path / "started"
        slow = pool.apply(_helpers.mark_then_sleep, (str(started), 60), timeout=2)
        others = [pool.apply(_helpers.square, (i,)) for i in range(10)]
        assert await toolkit.to_thread(_helpers.wait_for_file, str(started))
        pid = int(started.read_text())
        begun = time.monotonic()
        with pytest.raises(toolkit.TaskTimeoutError, match=r"did not finish within 2 s"):
            await slow
        assert time.monotonic() - begun < 10
        assert await asyncio.gather(*others) == [i * i for i in range(10)]
        dead = [w for w in pool.workers if w.state == "dead"]
        assert dead
        assert "timed out" in (dead[0].exit_reason or "")
        # The process that ran it is gone (its nanny starts a new one): the work stopped.
        await wait_until(lambda: _gone(pid), timeout=30, message="the worker process is killed")
        await _settled(pool)
        assert await pool.apply(_helpers.add, (1, 1)) == 2


async def test_dask_pool_worker_killed_mid_task_is_a_named_error(
    cluster: CliCluster, tmp_path: Path
) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        await _settled(pool)
        started = tmp_path / "started"
        doomed = pool.apply(_helpers.mark_then_sleep, (str(started), 60))
        assert await toolkit.to_thread(_helpers.wait_for_file, str(started))
        pid = int(started.read_text())
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(toolkit.WorkerDiedError) as info:
            await asyncio.wait_for(doomed, 30)
        error = info.value
        assert error.pid == pid
        assert error.address is not None
        assert error.address.startswith("tcp://127.0.0.1:")
        assert error.host == "127.0.0.1"
        assert error.address in str(error)
        assert "mark_then_sleep" in str(error)
        # The pool goes on, with the remaining worker and then the restarted one.
        assert await pool.map(_helpers.square, range(10)) == [i * i for i in range(10)]
        assert pool.stats().worker_deaths >= 1


async def test_dask_pool_cancel_stops_the_running_task(cluster: CliCluster, tmp_path: Path) -> None:
    async with toolkit.DaskPool(cluster.address) as pool:
        await _settled(pool)
        started = tmp_path / "started"
        task = asyncio.ensure_future(pool.apply(_helpers.mark_then_sleep, (str(started), 60)))
        assert await toolkit.to_thread(_helpers.wait_for_file, str(started))
        pid = int(started.read_text())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(
            lambda: _gone(pid), timeout=60, message="the cancelled task's worker process is gone"
        )
        assert await pool.apply(_helpers.square, (4,)) == 16


async def test_dask_pool_workers_come_from_the_scheduler(cluster: CliCluster) -> None:
    async with toolkit.DaskPool(cluster.address, name="cluster") as pool:
        await _settled(pool)
        pids = cluster.worker_pids()
        live = [w for w in pool.workers if w.state in ("idle", "busy")]
        assert len(live) == 2
        for row in live:
            assert row.address in pids
            assert row.pid == pids[row.address]
            assert row.host == "127.0.0.1"
            assert row.threads == 1
            assert row.name.startswith("cluster-")
        with pytest.raises(AttributeError):
            live[0].pid = 1  # type: ignore[misc]  # a frozen snapshot
        assert pool.stats().size == 2


async def test_dask_pool_takes_an_existing_client(cluster: CliCluster) -> None:
    client = await toolkit.to_thread(distributed.Client, cluster.address, timeout=30)
    try:
        async with toolkit.DaskPool(client=client) as pool:
            assert await pool.apply(_helpers.square, (5,)) == 25
        assert client.status == "running"  # the caller's client is left alone
    finally:
        await toolkit.to_thread(client.close)


async def test_dask_pool_bad_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match="one of address, client or local"):
        toolkit.DaskPool()
    with pytest.raises(TypeError, match="one of address, client or local"):
        toolkit.DaskPool("tcp://127.0.0.1:1", local=1)
    with pytest.raises(ValueError, match="local"):
        toolkit.DaskPool(local=0)
    with pytest.raises(TypeError, match="address"):
        toolkit.DaskPool(8786)  # type: ignore[arg-type]


async def test_dask_pool_unreachable_scheduler_fails_every_call() -> None:
    async with toolkit.DaskPool("tcp://127.0.0.1:9", connect_timeout=1) as pool:
        with pytest.raises(toolkit.BrokenPoolError, match="cannot reach the Dask cluster"):
            await asyncio.wait_for(pool.apply(_helpers.square, (2,)), 30)
        with pytest.raises(toolkit.BrokenPoolError):
            await pool.apply(_helpers.square, (2,))


async def test_dask_pool_scheduler_killed_breaks_the_pool_at_once(tmp_path: Path) -> None:
    own = await toolkit.to_thread(CliCluster, tmp_path, 1)
    try:
        async with toolkit.DaskPool(own.address) as pool:
            await _settled(pool, 1)
            running = pool.apply(_helpers.sleep_pid, (60,))
            queued = [pool.apply(_helpers.square, (i,)) for i in range(5)]
            own.scheduler.kill()
            started = time.monotonic()
            with pytest.raises(toolkit.BrokenPoolError, match="scheduler"):
                await asyncio.wait_for(running, 30)
            for call in queued:
                with pytest.raises(toolkit.BrokenPoolError):
                    await call
            with pytest.raises(toolkit.BrokenPoolError):
                await pool.apply(_helpers.square, (1,))
            assert time.monotonic() - started < 5  # noticed within a second or so
    finally:
        await toolkit.to_thread(own.stop)


async def test_dask_pool_local_cluster_starts_and_stops_with_the_pool() -> None:
    async with toolkit.DaskPool(local=2, local_options={"silence_logs": logging.CRITICAL}) as pool:
        assert await pool.map(_helpers.square, range(100)) == [i * i for i in range(100)]
        address = pool.scheduler_address
        assert address is not None
        assert address.startswith("tcp://127.0.0.1:")
    # Stopped with the pool: nothing listens there any more.
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(
            asyncio.open_connection(*address.removeprefix("tcp://").rsplit(":", 1)), 5
        )


async def test_dask_pool_console_restarts_a_cluster_worker_never_signals_its_pid(
    cluster: CliCluster, tmp_path: Path
) -> None:
    from playground import _views

    async with toolkit.DaskPool(cluster.address, name="console") as pool:
        await _settled(pool)
        started = tmp_path / "started"
        doomed = pool.apply(_helpers.mark_then_sleep, (str(started), 60))
        assert await toolkit.to_thread(_helpers.wait_for_file, str(started))
        pid = int(started.read_text())
        snapshot = toolkit.inspect.snapshot()
        row = next(
            r
            for r in _views.rows(snapshot)
            if r.owner == "console" and r.pid == pid and r.state != "dead"
        )
        assert row.kind == "dask"
        assert row.address is not None
        # From another thread, as the playground's top does: through the pool.
        said = await toolkit.to_thread(_views.restart_cluster_worker, row)
        assert row.name in said
        with pytest.raises(toolkit.WorkerDiedError):
            await asyncio.wait_for(doomed, 30)
        await wait_until(lambda: _gone(pid), timeout=30, message="the worker process is killed")
        with pytest.raises(LookupError, match="no live worker"):
            pool.restart_worker("console-999")
        await _settled(pool)
        assert await pool.apply(_helpers.square, (6,)) == 36


def test_playground_dask_option_lists_the_cluster_workers(cluster: CliCluster) -> None:
    code = (
        "from tests import _helpers\n"
        "print('result', await cluster.apply(_helpers.square, (7,)))\n"
        "ps()\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "playground", "--dask", cluster.address, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "result 49" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("cluster-")]
    assert len(rows) == 2, result.stdout
    assert all(" dask " in row for row in rows), result.stdout


async def test_dask_pool_terminate_leaves_idle_cluster_workers_alone(cluster: CliCluster) -> None:
    pids = set(cluster.worker_pids().values())
    pool = toolkit.DaskPool(cluster.address)
    await _settled(pool)
    assert await pool.apply(_helpers.square, (2,)) == 4
    pool.terminate()
    await asyncio.wait_for(pool.join(), 30)
    assert set(cluster.worker_pids().values()) == pids  # a shared cluster: nobody restarted
    async with toolkit.DaskPool(cluster.address) as other:
        with pytest.raises(NotImplementedError, match="scale the cluster"):
            other.resize(4)
