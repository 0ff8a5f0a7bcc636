"""toolkit.Process: await join through the sentinel, across start methods and loops."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext


async def test_process_join_returns_when_it_exits(mp_context: BaseContext) -> None:
    process = toolkit.Process(target=_helpers.exit_with, args=(7,), context=mp_context)
    process.start()
    await asyncio.wait_for(process.join(), 30)
    assert process.exitcode == 7
    assert not process.is_alive()


async def test_process_join_timeout_returns_with_it_running(mp_context: BaseContext) -> None:
    process = toolkit.Process(target=_helpers.block_forever, context=mp_context)
    process.start()
    try:
        await process.join(timeout=0.05)
        assert process.is_alive()
        assert process.exitcode is None
    finally:
        process.kill()
        await asyncio.wait_for(process.join(), 30)
    assert process.exitcode == -signal.SIGKILL


async def test_process_join_timeout_checked_as_everywhere(mp_context: BaseContext) -> None:
    process = toolkit.Process(target=_helpers.block_forever, context=mp_context)
    process.start()
    try:
        # The stdlib says "cannot convert float NaN to integer": not which argument, nor why.
        with pytest.raises(ValueError, match=r"^timeout must be a number >= 0, not nan$"):
            await process.join(float("nan"))
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
            await process.join("1")  # type: ignore[arg-type]
        # A negative timeout is 0, as in the stdlib: it returns at once, no error.
        await asyncio.wait_for(process.join(-1), 10)
        assert process.is_alive()
    finally:
        process.kill()
        await asyncio.wait_for(process.join(), 30)
    assert process.exitcode == -signal.SIGKILL
    with pytest.raises(ValueError, match="not nan"):  # even once it has ended: at the call
        await process.join(float("nan"))


async def test_process_cancelled_join_leaves_it_running(mp_context: BaseContext) -> None:
    process = toolkit.Process(target=_helpers.block_forever, context=mp_context)
    process.start()
    task = asyncio.ensure_future(process.join())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process.is_alive()
    process.terminate()
    await asyncio.wait_for(process.join(), 30)
    assert process.exitcode == -signal.SIGTERM


async def test_process_runs_a_lambda_target(mp_context: BaseContext) -> None:
    code = 5
    process = toolkit.Process(target=lambda: _helpers.exit_with(code), context=mp_context)
    process.start()
    await asyncio.wait_for(process.join(), 30)
    assert process.exitcode == 5


async def test_process_async_with_starts_and_joins(mp_context: BaseContext) -> None:
    async with toolkit.Process(target=_helpers.exit_with, args=(0,), context=mp_context) as process:
        assert process.pid is not None
    assert process.exitcode == 0


async def test_process_async_with_error_terminates(mp_context: BaseContext) -> None:
    with pytest.raises(_helpers.CustomError):
        async with toolkit.Process(target=_helpers.block_forever, context=mp_context) as process:
            _helpers.fail("inside")
    assert process.exitcode == -signal.SIGTERM


async def test_process_many_joins_need_no_thread() -> None:
    if toolkit.get_backend() == "threads":
        pytest.skip("the threads backend waits in helper threads by design (one per process)")
    processes = [
        toolkit.Process(target=_helpers.exit_with, args=(i % 3,), context="forkserver")
        for i in range(20)
    ]
    for process in processes:
        process.start()
    before = threading.active_count()
    await asyncio.wait_for(asyncio.gather(*(p.join() for p in processes)), 60)
    assert threading.active_count() <= before
    assert [p.exitcode for p in processes] == [i % 3 for i in range(20)]


async def test_process_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="callable"):
        toolkit.Process(target=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start method"):
        toolkit.Process(target=_helpers.square, context="teleport")
    with pytest.raises(AssertionError, match="started"):
        await toolkit.Process(target=_helpers.square).join()


def test_process_sync_is_the_plain_process() -> None:
    import multiprocessing.process

    process = toolkit.Process(target=_helpers.square, args=(2,), name="worker-1", daemon=True)
    assert isinstance(process.sync, multiprocessing.process.BaseProcess)
    assert (process.name, process.daemon) == ("worker-1", True)
    assert "toolkit." in repr(process)


async def test_process_join_after_close_is_a_value_error() -> None:
    process = toolkit.Process(target=_helpers.exit_with, args=(0,))
    process.start()
    await asyncio.wait_for(process.join(), 30)
    process.close()
    with pytest.raises(ValueError, match="closed"):
        await process.join()


def test_process_default_name_is_the_tutorials() -> None:
    # "Process-N" whatever the start method, numbered as the stdlib numbers them.
    for method in ("forkserver", "spawn"):
        process = toolkit.Process(target=print, context=method)
        assert process.name.startswith("Process-")
        assert process.name.split("-", 1)[1].isdigit()
    assert toolkit.Process(target=print, name="mine").name == "mine"


async def test_process_capture_output_tags_its_lines(mp_context: BaseContext) -> None:
    lines: list[toolkit.OutputLine] = []
    process = toolkit.Process(
        target=_helpers.print_lines,
        args=(2,),
        name="talker",
        context=mp_context,
        capture_output=lines.append,
    )
    async with process:
        pass  # joined: its output is read by then
    assert sorted((line.stream, line.text) for line in lines) == [
        ("stderr", "err 0"),
        ("stderr", "err 1"),
        ("stdout", "out 0"),
        ("stdout", "out 1"),
    ]
    assert {(line.worker, line.pid) for line in lines} == {("talker", process.pid)}
    process.close()


def test_process_capture_output_needs_a_running_loop() -> None:
    process = toolkit.Process(target=print, capture_output=True)
    with pytest.raises(RuntimeError, match="running event loop"):
        process.start()
    with pytest.raises(TypeError, match="capture_output"):
        toolkit.Process(target=print, capture_output="yes")  # type: ignore[arg-type]
