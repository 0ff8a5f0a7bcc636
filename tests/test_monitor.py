"""toolkit.monitor: a service's snapshot, fetched from outside over a socket."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from pathlib import Path


async def test_monitor_serves_the_snapshot(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with (
        toolkit.Pool(2, name="watched") as pool,
        toolkit.monitor.serve() as server,
    ):
        address = server.address
        assert isinstance(address, tuple)
        host, port = address
        assert host == "127.0.0.1"
        assert port != 0
        handle = pool.apply_async(_helpers.mark_then_wait, (str(tmp_path / "s"), str(gate)))
        async with asyncio.timeout(30):  # bounded: the worker makes it
            while not (tmp_path / "s").exists():  # noqa: ASYNC110 - another process makes it
                await asyncio.sleep(0.005)
        snapshot = await toolkit.monitor.fetch(server.address)
        (watched,) = [p for p in snapshot.pools if p.stats.name == "watched"]
        assert watched.stats.busy == 1
        busy = [w for w in watched.workers if w.state == "busy"]
        assert busy[0].task is not None
        assert busy[0].task.function.endswith("mark_then_wait")
        assert snapshot == toolkit.monitor.from_json(toolkit.monitor.to_json(snapshot))
        gate.touch()
        assert await handle is True


async def test_monitor_on_a_unix_socket_and_from_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "monitor.sock")
    async with toolkit.monitor.serve(path) as server:
        assert server.address == path
        code = (
            "import asyncio, sys, toolkit\n"
            "s = asyncio.run(toolkit.monitor.fetch(sys.argv[1]))\n"
            "print(type(s).__name__, len(s.pools))\n"
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, path, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(child.communicate(), 30)
        assert out.decode().split()[0] == "Snapshot"


async def test_monitor_refuses_unknown_requests_and_bad_addresses() -> None:
    async with toolkit.monitor.serve() as server:
        address = server.address
        assert isinstance(address, tuple)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"kill 1\n")
        assert b"unknown request" in await reader.readline()
        writer.close()
        await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await toolkit.monitor.fetch(address)
    with pytest.raises(TypeError):
        toolkit.monitor.serve(8080)  # type: ignore[arg-type]


async def _served_client(
    server: toolkit.monitor.MonitorServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Task[None]]:
    """A client that was answered once; the server task serving it."""
    address = server.address
    assert isinstance(address, tuple)
    reader, writer = await asyncio.open_connection(*address)
    writer.write(b"snapshot\n")
    await writer.drain()
    await asyncio.wait_for(reader.readline(), 10)
    (task,) = server._clients
    return reader, writer, task


async def test_monitor_cancelled_client_task_ends_cancelled_and_closes_its_connection() -> None:
    # The rule: a cancellation is never swallowed. The task serving a client
    # ends cancelled, its connection closed, and nothing is reported as an error.
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    async with toolkit.monitor.serve() as server:
        reader, writer, task = await _served_client(server)
        task.cancel()
        await asyncio.wait([task], timeout=10)
        assert task.cancelled()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the server closed it
        assert not server._clients
        writer.close()
        await writer.wait_closed()
        assert (await toolkit.monitor.fetch(server.address)).processes is not None  # serves on
    assert errors == []


async def test_monitor_close_cancels_its_client_tasks_and_waits_for_them() -> None:
    server = toolkit.monitor.serve()
    await server.start()
    reader, writer, task = await _served_client(server)
    await asyncio.wait_for(server.close(), 10)
    assert task.cancelled()
    assert not server._clients
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await writer.wait_closed()
