"""The namespace's commands, called as a script would call them, on both loops."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import toolkit
from playground._commands import Commands, Registry, View, await_chain, find_progress
from playground._namespace import Namespace
from tests._waiting import wait_until


async def test_commands_pool_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    views: list[View] = []

    def request_view(view: View) -> bool:
        views.append(view)
        return True

    commands = Commands(Registry(), request_view)
    pool = commands.pool(1, name="cmd")
    try:
        assert await pool.apply(abs, (-3,)) == 3
        commands.resize("cmd", 2)
        await wait_until(lambda: sum(w.state == "idle" for w in pool.workers) == 2, 20)
        slow = commands.submit(time.sleep, 30)
        await wait_until(lambda: any(w.state == "busy" for w in pool.workers), 20)
        busy = next(w for w in pool.workers if w.state == "busy")
        commands.info(busy.name)
        commands.info(pool)
        commands.terminate(busy.name)
        with pytest.raises(toolkit.WorkerDiedError, match="SIGTERM"):
            await slow
        dead = next(w for w in pool.workers if w.name == busy.name)
        assert dead.exit_reason == "killed by SIGTERM"
        with pytest.raises(LookupError):
            commands.kill("no-such-worker")
        commands.top()
        assert views == ["top"]  # a UI is attached: top is its view, nothing printed
        commands.ps()
    finally:
        pool.terminate()
        await pool.join()
    out = capsys.readouterr().out
    assert f"name:        {busy.name}" in out
    assert "busy" in out
    assert "size:" in out
    assert f"sent SIGTERM to {busy.name} (pid {busy.pid})" in out
    assert "process pool cmd" in out


async def test_commands_threads_cannot_be_killed_tasks_can_be_cancelled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = Commands(Registry())
    pool = commands.threadpool(1, name="thr")
    try:
        await pool.apply(abs, (-1,))
        with pytest.raises(TypeError, match="thread"):
            commands.kill("thr-1")
    finally:
        pool.terminate()
        await pool.join()

    async def napper() -> None:
        await asyncio.sleep(30)

    task = commands.background(napper(), name="napper")
    await asyncio.sleep(0)
    commands.tasks()
    assert any("napper" in link for link in await_chain(task))
    assert commands.cancel("napper") is True
    with pytest.raises(asyncio.CancelledError):
        await task
    out = capsys.readouterr().out
    assert "(T) napper" in out  # the tree of tasks, each with its await chain
    assert "└──  sleep (tasks.py:" in out


async def test_commands_process_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    commands = Commands(Registry())
    proc = commands.process(os.getpid)
    await proc.join()
    assert proc.exitcode == 0
    commands.ps()
    assert "Process" in capsys.readouterr().out

    class Half:
        done, total = 5, 10

    class Finished:
        done, total = 10, 10

    found = find_progress(None, {"half": Half(), "full": Finished(), "_hidden": Half()})
    assert [(p.label, p.done, p.total) for p in found] == [("half", 5, 10)]


async def test_commands_shutdown_stops_pools_made_directly() -> None:
    namespace = Namespace()
    pool = toolkit.Pool(1)
    namespace.globals["mine"] = pool  # made with toolkit.Pool, not pool()
    assert await pool.apply(abs, (-1,)) == 1
    await namespace.shutdown()
    assert pool.stats().state == "terminated"
    assert all(w.state == "dead" for w in pool.workers)
