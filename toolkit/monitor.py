"""A running service's pools and processes, seen from outside: a small read-only monitor server.

A service starts it inside its event loop::

    async with toolkit.monitor.serve(("127.0.0.1", 0)) as server:
        print("monitor on", server.address)
        await run_the_service()

and anyone on the machine (the playground's ``attach``, a script, ``nc``)
asks for snapshots::

    snapshot = await toolkit.monitor.fetch(server.address)

The protocol is one line per request, one JSON line per answer: send
``snapshot`` and read ``toolkit.inspect.snapshot()`` as JSON. The server only
reads: it cannot start, stop or kill anything. It listens on loopback (or a
Unix socket path) unless an address says otherwise; a snapshot names the
functions the service runs and short reprs of their arguments, so expose it
no wider than those.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ._core._inspection import (
    PoolSnapshot,
    PoolStats,
    ProcessInfo,
    Snapshot,
    TaskInfo,
    WorkerInfo,
    snapshot as take_snapshot,
)

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = [
    "Address",
    "MonitorServer",
    "fetch",
    "from_json",
    "serve",
    "to_json",
]

Address = tuple[str, int] | str

_MAX_LINE = 1024  # a request is one short word


def to_json(snapshot: Snapshot) -> str:
    """One line of JSON for a snapshot (from_json reads it back)."""
    return json.dumps(dataclasses.asdict(snapshot), separators=(",", ":"))


def from_json(text: str | bytes) -> Snapshot:
    """The snapshot a to_json line describes."""
    data = json.loads(text)
    pools = tuple(
        PoolSnapshot(
            PoolStats(**pool["stats"]),
            tuple(
                WorkerInfo(
                    **{**w, "task": TaskInfo(**w["task"]) if w["task"] is not None else None}
                )
                for w in pool["workers"]
            ),
        )
        for pool in data["pools"]
    )
    processes = tuple(ProcessInfo(**p) for p in data["processes"])
    return Snapshot(data["taken_at"], pools, processes)


class MonitorServer:
    """The monitor of this process, listening on ``address`` (see the module docstring)."""

    def __init__(self, address: Address = ("127.0.0.1", 0)) -> None:
        if isinstance(address, tuple):
            if len(address) != 2 or not isinstance(address[0], str):
                raise TypeError(f"address must be (host, port) or a Unix socket path: {address!r}")
        elif not isinstance(address, str):
            raise TypeError(f"address must be (host, port) or a Unix socket path: {address!r}")
        self._requested = address
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> Address:
        """Where it listens (the real port once started, if 0 was asked for)."""
        if self._server is None:
            return self._requested
        name = self._server.sockets[0].getsockname()
        return name if isinstance(name, str) else (name[0], name[1])

    async def start(self) -> None:
        """Start listening (in the running loop)."""
        if self._server is not None:
            return
        if isinstance(self._requested, str):
            self._server = await asyncio.start_unix_server(self._accept, self._requested)
        else:
            host, port = self._requested
            self._server = await asyncio.start_server(self._accept, host, port)

    async def close(self) -> None:
        """Stop listening and drop every client."""
        if self._server is None:
            return
        self._server.close()
        for client in list(self._clients):
            client.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each client is served by a task of our own, not by one asyncio's
        # server makes from a coroutine callback: the done-callback asyncio puts
        # on that one calls exception() on it, which a cancelled task raises
        # (3.11, 3.12: logged as an error). Ours may end cancelled, as any task.
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one client until it leaves.

        Cancellation (``close()``, the loop ending): not caught; the writer is
        closed on the way out and the task ends cancelled.
        """
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                if len(line) > _MAX_LINE:
                    return
                request = line.strip().decode(errors="replace")
                if request == "snapshot":
                    answer = to_json(take_snapshot())
                else:
                    answer = json.dumps({"error": f"unknown request {request!r}; try 'snapshot'"})
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            return  # the client left: its end, not an error
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def serve(address: Address = ("127.0.0.1", 0)) -> MonitorServer:
    """A monitor server for this process; ``async with`` it (or await its start()).

    Args:
        address: (host, port) — loopback, a free port, by default — or a Unix socket path.
    """
    return MonitorServer(address)


async def fetch(address: Address, *, timeout: float = 5.0) -> Snapshot:
    """Ask the monitor at address for a snapshot.

    Raises:
        OSError: nothing listens there.
        TimeoutError: no answer within timeout seconds.
        ValueError: the answer is not a snapshot.
    """
    async with asyncio.timeout(timeout):
        if isinstance(address, str):
            reader, writer = await asyncio.open_unix_connection(address)
        else:
            reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(b"snapshot\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    try:
        data: Any = json.loads(line)
        if "error" in data:
            raise ValueError(data["error"])
        return from_json(line)
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a toolkit monitor at {address!r}: {line[:80]!r}") from exc
