"""Dask distributed as an engine of the pool core: a pool's worker is a cluster's worker.

Theory of operation
-------------------
``DaskPool`` (toolkit/_dask.py) runs the same Scheduler as ``Pool``
(_scheduler.py) over a Dask cluster. Each of its workers (``DaskWorker``)
claims one worker of the cluster, and every task it takes goes there::

    apply/map ─▶ Scheduler ─ enqueue ─▶ DaskWorker ─ client.submit(run_timed, payload,
                  ▲  timeouts, cancel,     │            workers=[its address],
                  │  crash attribution     │            allow_other_workers=False, pure=False)
                  │                        ▼
                  └── on_results ◀── await the Dask future: (seconds, pickled outcome)

* **The call is pickled here** (_core/_serialize.py), as for a local pool:
  bad input fails at the call with SerializationError, and a task's own
  exception comes back as a value, with its type and remote traceback
  (Dask neither retries it nor logs "Compute Failed").
* **No thread per call**: one asynchronous ``Client`` on the pool's own
  loop. A cluster the pool starts itself (``DaskPool(local=n)``) runs in a
  thread of its own, so that its scheduler never stalls the caller's loop.
* **Pinned tasks**: a task runs on the worker its DaskWorker claimed, so
  the Scheduler knows where each task is, and so what a timeout must stop
  and which task a dead worker was running. Dask's own retries never move
  it elsewhere: the pool decides (the oldest task of a dead worker fails
  with WorkerDiedError, the rest run again on another worker).
* **A timeout or a cancel restarts the cluster worker** (through its
  nanny): Dask cannot interrupt a running task, and a restart really stops
  it. Tasks of other clients on that worker are rescheduled by Dask.
* **The cluster is watched** (``ClusterView``): the scheduler's list of
  workers every 0.2 s. A claimed worker that leaves ends its DaskWorker;
  a worker that joins grows the pool; the scheduler unreachable breaks the
  pool (BrokenPoolError), failing every pending and later call at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from .._core._errors import WorkerDiedError
from ._worker import READY, SKIPPED, TASK
from ._workers import WorkerBase

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["WATCH_INTERVAL", "ClusterView", "DaskWorker", "run_timed"]

# How often the scheduler's list of workers is read: a dead worker's task
# fails within about this long of the scheduler noticing the death.
WATCH_INTERVAL = 0.2

# Looks in a row that find the scheduler unreachable before the pool breaks.
_LOOKS = 3


def run_timed(payload: bytes, chunk: bool) -> tuple[float, bytes]:
    """Run a pickled call or chunk on a Dask worker: (seconds it ran, pickled outcome)."""
    from time import perf_counter

    from .._core._serialize import run_call, run_chunk

    started = perf_counter()
    outcome = run_chunk(payload) if chunk else run_call(payload)
    return perf_counter() - started, outcome


class ClusterView:
    """One pool's connection to a cluster: its client, and who is in the cluster now."""

    def __init__(
        self,
        address: str | None,
        client: Any,
        local: int | None,
        local_options: dict[str, Any],
        connect_timeout: float = 10.0,
    ) -> None:
        self._address = address
        self._connect_timeout = connect_timeout
        self._given = client  # a client of the caller's: only its address is used
        self._local = local
        self._local_options = local_options
        self._cluster: Any = None  # a LocalCluster this pool started
        self.client: Any = None  # our asynchronous client, on the pool's loop
        self.workers: dict[str, dict[str, Any]] = {}  # address -> the scheduler's record
        self.pids: dict[str, int] = {}
        self.claimed: dict[str, DaskWorker] = {}
        self.dying: set[str] = set()  # killed by us, not gone from the scheduler's list yet
        self.changed = asyncio.Event()  # set on each change of self.workers (then cleared)
        self.error: BaseException | None = None  # why the cluster cannot be reached
        self.on_lost: Callable[[BaseException], None] | None = None  # the pool's, if set
        self._connected: asyncio.Future[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def scheduler_address(self) -> str | None:
        return self._address

    def connected(self) -> asyncio.Future[None]:
        """Resolved once the client is connected and the workers are known (started once)."""
        if self._connected is None:
            self._connected = asyncio.ensure_future(self._connect())
        return self._connected

    async def _connect(self) -> None:
        import distributed

        if self._given is not None:
            # Our own asynchronous client on this loop: the given one may be
            # synchronous (a thread of its own) or on another loop.
            self._address = self._given.scheduler.address
        elif self._address is None:
            from .._core._threads import to_thread

            options = {
                "n_workers": self._local,
                "threads_per_worker": 1,
                "processes": True,
                "host": "127.0.0.1",
                "dashboard_address": "127.0.0.1:0",
                # Restarts after a timeout are the pool's doing, not news.
                "silence_logs": logging.ERROR,
                **self._local_options,
            }
            # Synchronous: it runs in a thread of its own, never on our loop.
            self._cluster = await to_thread(distributed.LocalCluster, **options)
            self._address = self._cluster.scheduler_address
        self.client = await distributed.Client(  # type: ignore[no-untyped-call]
            self._address,
            asynchronous=True,
            set_as_default=False,
            timeout=self._connect_timeout,
        )
        await self._refresh()
        self._watch = asyncio.ensure_future(self._watching())

    async def _refresh(self) -> None:
        info = await self.client.scheduler.identity()
        workers: dict[str, dict[str, Any]] = info.get("workers", {})
        if set(workers) != set(self.workers):
            new = [address for address in workers if address not in self.pids]
            self.workers = workers
            if new:
                with contextlib.suppress(Exception):  # a worker may leave meanwhile
                    self.pids.update(await self.client.run(os.getpid, workers=new))
            for address, worker in list(self.claimed.items()):
                if address not in workers:
                    worker.gone()
            self.dying &= set(workers)
            self.changed.set()
            self.changed.clear()
        else:
            self.workers = workers  # fresher metrics

    async def _watching(self) -> None:
        failures = 0
        while not self._closing:
            await asyncio.sleep(WATCH_INTERVAL)
            # A client that lost the scheduler has had its futures cancelled by
            # Dask already ("scheduler-connection-lost"): a few looks, then break.
            if self.client.status != "running":
                failures += 1
                if failures >= _LOOKS:
                    self.lost(ConnectionError(f"lost the connection to {self._address}"))
                    return
                continue
            try:
                await asyncio.wait_for(self._refresh(), 2)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the scheduler is unreachable
                failures += 1
                if failures >= _LOOKS:
                    self.lost(exc)
                    return

    def lost(self, exc: BaseException) -> None:
        self.error = exc
        if self.on_lost is not None:
            self.on_lost(exc)  # the pool breaks first: its calls fail with BrokenPoolError
        for worker in list(self.claimed.values()):
            worker.gone()
        self.changed.set()

    async def claim(self, worker: DaskWorker) -> str:
        """Wait for a cluster worker no other of our workers has; take it."""
        while True:
            if self.error is not None:
                raise self.error
            for address in self.workers:
                if address not in self.claimed and address not in self.dying:
                    self.claimed[address] = worker
                    return address
            await self.changed.wait()

    def kill(self, address: str) -> bool:
        """Kill a cluster worker's process now; return whether its nanny restarts it.

        Its nanny kills it (a restart through the nanny first asks the
        worker to close, which waits seconds for a running task); a worker
        without a nanny ends itself, for good.
        """
        client = self.client
        if client is None or client.status != "running":
            return False
        self.dying.add(address)  # not claimed again until it has left
        record = self.workers.get(address, {})
        pid = self.pids.get(address)
        if record.get("nanny") and pid is not None:
            kill = client.run(
                os.kill,
                pid,
                getattr(signal, "SIGKILL", signal.SIGTERM),
                workers=[address],
                nanny=True,
            )
            restarts = True
        else:
            kill = client.run(os._exit, 1, workers=[address], wait=False)
            restarts = False
        task = asyncio.ensure_future(kill)
        task.add_done_callback(_quiet)
        return restarts

    def release(self, address: str | None, worker: DaskWorker) -> None:
        if address is not None and self.claimed.get(address) is worker:
            del self.claimed[address]
            self.changed.set()
            self.changed.clear()

    async def close(self) -> None:
        """Close our client, and the cluster if we started it (in a thread: it blocks)."""
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 10)
        if self._cluster is not None:
            from .._core._threads import to_thread

            with contextlib.suppress(Exception):
                await to_thread(self._cluster.close, 10)


class DaskWorker(WorkerBase):
    """One worker of the cluster, as the Scheduler sees a worker: tasks pinned to it."""

    kind = "process"
    killable = True
    tid = None

    def __init__(
        self,
        name: str,
        view: ClusterView,
        on_message: Callable[..., None],
        on_results: Callable[..., None],
    ) -> None:
        super().__init__(name, on_message, on_results)
        self._view = view
        self.address: str | None = None
        self._futures: dict[int, Any] = {}  # task id -> its Dask future
        self._early: list[Any] = []  # tasks given before it had a cluster worker
        self._host: str | None = None
        self._pid: int | None = None
        self._waits: set[asyncio.Task[None]] = set()
        self.ended = asyncio.Event()  # it left the cluster, or we let it go
        self._restarted = False

    # -- life ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim a cluster worker, say READY, and live until it leaves or we let it go."""
        try:
            await self._view.connected()
            self.address = await self._view.claim(self)
            record = self._view.workers.get(self.address, {})
            self._host = record.get("host")  # kept: the record goes with the worker
            self._pid = self._view.pids.get(self.address)
        except BaseException:
            self.ended.set()
            raise
        early, self._early = self._early, []
        for task in early:
            if task.id in self.outstanding:  # not withdrawn meanwhile
                self._submit(task)
        self.on_message(self, READY, 0, None, 0.0)
        await self.ended.wait()

    def gone(self) -> None:
        """The cluster worker left (it died, or was restarted): this worker ends."""
        self.ended.set()

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def host(self) -> str | None:
        return self._host

    @property
    def threads(self) -> int | None:
        record = self._view.workers.get(self.address or "")
        return None if record is None else record.get("nthreads")

    # -- tasks --------------------------------------------------------------------------------

    def enqueue(self, task: Any) -> None:
        if self.address is None:
            self._early.append(task)  # handed over before it claimed a cluster worker
            return
        self._submit(task)

    def _submit(self, task: Any) -> None:
        client = self._view.client
        future = client.submit(
            run_timed,
            task.payload,
            task.kind != TASK,
            key=f"{self.name}-{task.id}-{time.monotonic_ns()}",
            workers=[self.address],
            allow_other_workers=False,
            pure=False,
            retries=0,
        )
        self._futures[task.id] = future
        wait = asyncio.ensure_future(self._answer(task.id, future))
        self._waits.add(wait)
        wait.add_done_callback(self._waits.discard)

    async def _answer(self, ident: int, future: Any) -> None:
        try:
            elapsed, outcome = await future
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            # Withdrawn or killed by us, or Dask lost the scheduler: the
            # pool says what became of it (SKIPPED, a kill, a broken pool).
            return
        except Exception as exc:  # noqa: BLE001 - Dask could not run it (not the task's own error)
            if self._futures.pop(ident, None) is None or self.ended.is_set():
                return  # its worker's end decides
            self.on_results(self, [(ident, (False, exc), 0.0)])
            return
        if self._futures.pop(ident, None) is not None:
            self.on_results(self, [(ident, outcome, elapsed)])

    def withdraw(self, task: Any) -> None:
        if task in self._early:
            self._early.remove(task)
        future = self._futures.pop(task.id, None)
        if future is not None:
            self._cancel([future])
        self.on_message(self, SKIPPED, task.id, None, 0.0)

    def _cancel(self, futures: list[Any]) -> None:
        client = self._view.client
        if not futures or client is None or client.status != "running":
            return
        cancelling = asyncio.ensure_future(client.cancel(futures))
        self._waits.add(cancelling)
        cancelling.add_done_callback(self._waits.discard)
        cancelling.add_done_callback(_quiet)

    def request_stop(self) -> None:
        self._release()
        self.ended.set()

    def kill(self) -> None:
        """Stop its tasks for good: restart the cluster worker (through its nanny).

        Only if it has tasks of ours: an idle worker of a shared cluster is
        let go, untouched (terminate() on a pool with idle workers).
        """
        futures = list(self._futures.values())
        self._futures.clear()
        self._cancel(futures)
        if self.address is not None and futures:
            self._restarted = self._view.kill(self.address)
        self._release()
        self.ended.set()

    def kill_now(self) -> None:
        """Its loop has closed: the client went with it; the cluster keeps its worker."""
        self.ended.set()

    def _release(self) -> None:
        self._view.release(self.address, self)

    def exit_words(self, exitcode: int | None) -> str:
        return "its cluster worker restarted" if self._restarted else "let go"

    def end_reason(self, exitcode: int | None) -> str:
        if self._view.error is not None:
            return f"the scheduler is unreachable: {self._view.error}"
        return "left the cluster (its process died or was restarted)"

    def died(self, exitcode: int | None, task: str) -> WorkerDiedError:
        how = "the scheduler lost it" if self._view.error is None else "the scheduler is gone"
        return WorkerDiedError(self.pid or 0, None, task, self.address, self.host, how)

    def drain(self) -> None:
        """Its cluster worker is gone: tasks still pinned to it would wait forever."""
        futures = list(self._futures.values())
        self._futures.clear()
        self._cancel(futures)
        self._release()

    def close(self) -> None:
        self._futures.clear()
        self._release()

    def usage(self) -> tuple[float | None, int | None]:
        record = self._view.workers.get(self.address or "")
        if record is None:
            return None, None
        metrics = record.get("metrics", {})
        return metrics.get("cpu"), metrics.get("memory")


def _quiet(future: asyncio.Future[Any]) -> None:
    """Retrieve a background call's outcome (a restart that failed is the next watch's news)."""
    if not future.cancelled():
        future.exception()
