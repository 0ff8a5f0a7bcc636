"""``toolkit.DaskPool``: the toolkit's Pool, its workers a Dask cluster's.

The same API and semantics as ``toolkit.Pool`` (``apply``, ``map``,
``imap``, ``submit``, ``timeout=``, cancellation, ``workers``,
``stats()``), over a Dask distributed cluster: one at an address, the one
a ``distributed.Client`` is connected to, or a loopback one it starts for
experiments. The engine is _engines/_dask.py; docs/distributed.md teaches it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from ._core._validate import check_timeout
from ._engines._dask import ClusterView, DaskWorker
from ._pool import _PoolBase

if TYPE_CHECKING:
    from ._core._inspection import WorkerInfo
    from ._engines._workers import WorkerBase as _Worker

__all__ = ["DaskPool"]


class DaskPool(_PoolBase):
    """A pool whose workers are a Dask cluster's: ``toolkit.Pool``'s API, on a cluster.

    ``async with toolkit.DaskPool("tcp://scheduler:8786") as pool: await pool.map(f, items)``.

    Give one of:

    Args:
        address: a running scheduler's address (``tcp://host:8786``).
        client: a ``distributed.Client`` already connected: the pool opens its
            own asynchronous client to the same scheduler, on its own loop,
            and leaves this one alone.
        local: start a cluster of this many worker processes on this machine,
            bound to 127.0.0.1 only, for experiments; it stops with the pool.
        local_options: more ``distributed.LocalCluster`` keyword arguments.
        name: names the pool and its workers (``<name>-<n>``) in inspection.
        timeout: the default per-task timeout of apply/apply_async/submit
            (seconds, > 0), as ``Pool``'s.
        connect_timeout: seconds to reach the scheduler before every call
            fails with ``BrokenPoolError``.

    The pool has one worker per worker of the cluster, and follows it as
    workers join and leave. Functions and arguments are pickled here (by
    reference when importable, else by value with cloudpickle): the
    cluster's workers must be able to import the modules they name, and
    the toolkit itself.

    Differences from ``Pool``: a task past its timeout, or a running task
    cancelled, restarts the cluster worker that runs it (through its
    nanny), since Dask cannot stop a running task otherwise; a worker
    that dies fails the task it was running with ``WorkerDiedError``
    naming its address and host; the scheduler gone breaks the pool
    (``BrokenPoolError``). There is no initializer or maxtasksperchild.

    Raises:
        TypeError: not exactly one of address, client or local; an address
            that is not a str; a client that is not a ``distributed.Client``.
        ValueError: local is not a number >= 1; a timeout <= 0.
        ImportError: Dask distributed is not installed (``toolkit[dask]``).
    """

    _kind: Literal["process", "thread"] = "process"
    _serialize = True
    # A Dask task costs ~10 ms of latency and a few ms of CPU across the
    # cluster's processes: a map's adaptive chunks aim at 0.25 s of work each
    # (a local pool's aim at 20 ms), still several per worker.
    _chunk_target = 0.25

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        local: int | None = None,
        local_options: dict[str, Any] | None = None,
        name: str | None = None,
        timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        given = sum(x is not None for x in (address, client, local))
        if given != 1:
            raise TypeError("give one of address, client or local")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a str, not {type(address).__name__}")
        if local is not None and (
            isinstance(local, bool) or not isinstance(local, int) or local < 1
        ):
            raise ValueError(f"local must be a number of workers (>= 1), not {local!r}")
        if client is not None and not hasattr(client, "scheduler"):
            raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
        try:
            import distributed  # noqa: F401 - said here, not at the first call
        except ImportError as exc:
            raise ImportError(
                "DaskPool needs Dask distributed: pip install 'toolkit[dask]'"
            ) from exc
        reach = check_timeout(connect_timeout, allow_zero=False, name="connect_timeout")
        self._view = ClusterView(address, client, local, dict(local_options or {}), reach or 10.0)
        self._follower: asyncio.Task[None]  # made with the loop (_bind)
        self._view.on_lost = self._lost
        super().__init__(local or 1, None, (), None, timeout, name, "workers")

    @property
    def scheduler_address(self) -> str | None:
        """The scheduler's address (known once connected, for a local cluster)."""
        return self._view.scheduler_address

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        super()._bind(loop)
        self._follower = loop.create_task(
            self._follow_cluster(), name=f"toolkit-{self._name}-cluster"
        )

    async def _follow_cluster(self) -> None:
        """One pool worker per cluster worker, as they come; break if the cluster is gone."""
        view = self._view
        try:
            await view.connected()
        except Exception as exc:  # noqa: BLE001 - cannot connect: every call fails with why
            self._break(exc, "cannot reach the Dask cluster:")
            return
        while self._state == "running":
            if view.error is not None:
                self._break(view.error, "lost the Dask scheduler:")
                return
            wanted = max(1, len(view.workers))
            if wanted > self._size:
                self._size = wanted
                self._replenish()
            elif wanted < self._size:
                # Fewer workers: the extra pool workers wait to claim one that
                # comes back (a restart), up to the new size.
                self._size = wanted
            await view.changed.wait()

    def _lost(self, error: BaseException) -> None:
        self._break(error, "lost the Dask scheduler:")

    def _new_worker(self, loop: asyncio.AbstractEventLoop, name: str) -> _Worker:
        return DaskWorker(name, self._view, self._on_message, self._on_results)

    async def _run_worker(self, worker: _Worker) -> None:
        assert isinstance(worker, DaskWorker)
        try:
            await worker.run()
        except asyncio.CancelledError:
            worker.kill_now()
            self._loop_ended()
            self._on_exit(worker)
            raise
        except Exception as exc:  # noqa: BLE001 - the cluster cannot be reached
            if self._broken is None:
                self._break(exc, "cannot reach the Dask cluster:")
        self._on_exit(worker)

    def resize(self, size: int) -> None:
        """Not for a cluster: the pool has one worker per cluster worker.

        Raises:
            NotImplementedError: always; scale the cluster instead
                (``cluster.scale(n)``, or start more ``dask worker``).
        """
        raise NotImplementedError(
            "a DaskPool has one worker per worker of the cluster: scale the cluster"
            " (cluster.scale(n), or more `dask worker` processes) and the pool follows"
        )

    def restart_worker(self, name: str) -> None:
        """Kill the process of the cluster worker behind pool worker ``name``, as a
        timeout does: its nanny starts a fresh one, and the task it was running
        fails with ``WorkerDiedError``. Callable from any thread (a console's).

        Raises:
            LookupError: no live worker of this pool has that name.
        """
        if not any(w.name == name and w.state != "dead" for w in list(self._workers)):
            raise LookupError(f"{self!r} has no live worker {name!r}")
        loop = self._loop
        assert loop is not None

        def restart() -> None:
            for worker in list(self._workers):
                if worker.name == name:
                    self._kill(worker, "killed: restarted from the console")

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            restart()
        else:
            loop.call_soon_threadsafe(restart)

    @staticmethod
    def _update_capacity(worker: _Worker) -> None:
        # A round trip through Dask costs milliseconds: a worker holds a few
        # tasks per thread, so that its threads never wait for the next one.
        threads = getattr(worker, "threads", None) or 1
        worker.capacity = 2 * threads if worker.ready else 1

    def _worker_info(self, worker: _Worker) -> WorkerInfo:
        info = super()._worker_info(worker)
        if isinstance(worker, DaskWorker):
            from dataclasses import replace

            info = replace(info, address=worker.address, host=worker.host, threads=worker.threads)
        return info

    async def join(self) -> None:
        """As ``Pool.join``; then the pool's client closes (and its local cluster stops).

        Raises:
            ValueError: the pool is still running (call close() or terminate() first).
            RuntimeError: the pool belongs to another event loop that is still running.

        Cancellation:
            The workers go on leaving; the client still closes (shielded: the
            cancelled join waits for that, then raises ``CancelledError``).
        """
        try:
            await super().join()
        finally:
            if self._state != "running":
                self._follower.cancel()
                await asyncio.shield(self._view.close())
