"""A task's SystemExit or KeyboardInterrupt fails that task only, as toolkit.TaskExitError.

asyncio lets SystemExit and KeyboardInterrupt through every task: raised by a
task (``sys.exit`` in reused CLI code, an argparse error) and handed to the
caller as they are, they would end the caller's program. Every way of
running a task hands back a ``TaskExitError`` instead: an ordinary
``Exception`` with ``.code`` and ``.kind``, the original as ``__cause__``.

The awaits go through ``_task_exit``, which turns a raw SystemExit or
KeyboardInterrupt reaching the test into a plain failure: let through, a
KeyboardInterrupt would stop the whole pytest session instead.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from multiprocessing.context import BaseContext

pytestmark = pytest.mark.timeout(60)

_ROOT = Path(__file__).resolve().parent.parent

# (what the task does, its args, the expected .kind and .code)
_EXITS: list[tuple[Callable[..., object], tuple[object, ...], str, object]] = [
    (sys.exit, (3,), "SystemExit", 3),
    (sys.exit, ("bad usage",), "SystemExit", "bad usage"),
    (sys.exit, (), "SystemExit", None),
    (_helpers.interrupt, (), "KeyboardInterrupt", None),
]


async def _task_exit(awaitable: Awaitable[object]) -> toolkit.TaskExitError:
    """Await a task that must fail with TaskExitError; return the error."""
    try:
        result = await awaitable
    except toolkit.TaskExitError as error:
        return error
    except (SystemExit, KeyboardInterrupt) as exc:
        pytest.fail(f"the task's {exc!r} reached the caller as it is")
    pytest.fail(f"the task did not fail; it returned {result!r}")


def _check(error: toolkit.TaskExitError, kind: str, code: object, *, remote: bool) -> None:
    """The error says what the task raised, and carries the original (and its traceback)."""
    assert type(error) is toolkit.TaskExitError
    assert isinstance(error, toolkit.ToolkitError)
    assert isinstance(error, Exception)
    assert error.kind == kind
    assert error.code == code
    assert type(error.code) is type(code)  # 3 stays an int, None stays None
    message = str(error)
    assert kind in message
    if kind == "SystemExit":
        assert repr(code) in message
    original = error.__cause__
    expected = SystemExit if kind == "SystemExit" else KeyboardInterrupt
    assert isinstance(original, expected), repr(original)
    if isinstance(original, SystemExit):
        assert original.code == code
    if remote:  # the worker's traceback, attached to the original
        assert isinstance(original.__cause__, toolkit.RemoteTraceback)
        assert kind in str(original.__cause__)


# --- the exception itself -------------------------------------------------------------------------


def test_task_exit_error_is_an_ordinary_toolkit_error() -> None:
    assert issubclass(toolkit.TaskExitError, toolkit.ToolkitError)
    assert issubclass(toolkit.TaskExitError, Exception)
    assert not issubclass(toolkit.TaskExitError, (SystemExit, KeyboardInterrupt))
    error = toolkit.TaskExitError("SystemExit", 3)
    assert error.kind == "SystemExit"
    assert error.code == 3
    assert "SystemExit(3)" in str(error)
    interrupt = toolkit.TaskExitError("KeyboardInterrupt")
    assert interrupt.kind == "KeyboardInterrupt"
    assert interrupt.code is None
    assert "KeyboardInterrupt" in str(interrupt)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("SystemExit", 3),
        ("SystemExit", "bad usage"),
        ("SystemExit", None),
        ("KeyboardInterrupt", None),
    ],
)
def test_task_exit_error_pickles_with_code_and_kind(kind: str, code: object) -> None:
    error = toolkit.TaskExitError(kind, code)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is toolkit.TaskExitError
    assert copy.kind == kind
    assert copy.code == code
    assert type(copy.code) is type(code)
    assert str(copy) == str(error)


# --- Pool -----------------------------------------------------------------------------------------


async def test_pool_apply_exit_fails_only_the_task(mp_context: BaseContext) -> None:
    async with toolkit.Pool(1, context=mp_context) as pool:
        worker = await pool.apply(_helpers.pid)
        for fn, args, kind, code in _EXITS:
            error = await _task_exit(pool.apply(fn, args))
            _check(error, kind, code, remote=True)
            # The pool answers the next task, from the same worker: not replaced.
            assert await pool.apply(_helpers.square, (7,)) == 49
        assert await pool.apply(_helpers.pid) == worker
        stats = pool.stats()
        assert stats.worker_deaths == 0
        assert stats.workers_started == 1
        assert stats.failed == len(_EXITS)


async def test_pool_apply_exit_is_caught_by_except_exception(mp_context: BaseContext) -> None:
    async with toolkit.Pool(1, context=mp_context) as pool:
        caught: Exception | None = None
        try:
            await pool.apply(sys.exit, (3,))
        except Exception as exc:  # noqa: BLE001 - what the behaviour is about
            caught = exc
        assert isinstance(caught, toolkit.TaskExitError)
        assert caught.code == 3
        assert await pool.apply(_helpers.square, (3,)) == 9


async def test_pool_map_exit_raises_task_exit_error(mp_context: BaseContext) -> None:
    # One worker: no other chunk runs beside the failing one (the map would kill it).
    async with toolkit.Pool(1, context=mp_context) as pool:
        exit_on_2 = functools.partial(_helpers.exit_on, 2)
        error = await _task_exit(pool.map(exit_on_2, range(5)))
        _check(error, "SystemExit", 2, remote=True)
        error = await _task_exit(pool.map(exit_on_2, range(5), chunksize=5))  # mid-chunk
        _check(error, "SystemExit", 2, remote=True)
        assert await pool.map(_helpers.square, range(4)) == [0, 1, 4, 9]
        assert pool.stats().worker_deaths == 0
        assert pool.stats().workers_started == 1


async def test_pool_apply_async_get_raises_task_exit_error(mp_context: BaseContext) -> None:
    async with toolkit.Pool(1, context=mp_context) as pool:
        handle = pool.apply_async(sys.exit, ("bad usage",))
        error = await _task_exit(handle.get(timeout=30))
        _check(error, "SystemExit", "bad usage", remote=True)
        assert handle.ready()
        assert not handle.successful()
        interrupted = pool.apply_async(_helpers.interrupt)
        _check(
            await _task_exit(interrupted.get(timeout=30)), "KeyboardInterrupt", None, remote=True
        )
        assert await pool.apply_async(_helpers.square, (5,)).get(timeout=30) == 25
        assert pool.stats().worker_deaths == 0
        assert pool.stats().workers_started == 1


# --- ThreadPool -----------------------------------------------------------------------------------


async def test_thread_pool_apply_exit_fails_only_the_task() -> None:
    async with toolkit.ThreadPool(1) as pool:
        thread = await pool.apply(_helpers.thread_id)
        for fn, args, kind, code in _EXITS:
            error = await _task_exit(pool.apply(fn, args))
            _check(error, kind, code, remote=False)
            assert await pool.apply(_helpers.square, (7,)) == 49
        assert await pool.apply(_helpers.thread_id) == thread  # the same worker thread
        assert pool.stats().worker_deaths == 0
        assert pool.stats().workers_started == 1


async def test_thread_pool_map_exit_raises_task_exit_error() -> None:
    async with toolkit.ThreadPool(2) as pool:
        exit_on_2 = functools.partial(_helpers.exit_on, 2)
        _check(await _task_exit(pool.map(exit_on_2, range(5))), "SystemExit", 2, remote=False)
        error = await _task_exit(pool.map(exit_on_2, range(5), chunksize=5))
        _check(error, "SystemExit", 2, remote=False)
        assert await pool.map(_helpers.square, range(4)) == [0, 1, 4, 9]
        assert pool.stats().worker_deaths == 0


# --- to_thread and to_process ---------------------------------------------------------------------


async def test_to_thread_exit_raises_task_exit_error() -> None:
    for fn, args, kind, code in _EXITS:
        error = await _task_exit(toolkit.to_thread(fn, *args))
        _check(error, kind, code, remote=False)
    assert await toolkit.to_thread(_helpers.square, 6) == 36


async def test_to_process_exit_raises_task_exit_error(default_executors: None) -> None:
    for fn, args, kind, code in _EXITS:
        error = await _task_exit(toolkit.to_process(fn, *args))
        _check(error, kind, code, remote=True)
    assert await toolkit.to_process(_helpers.square, 6) == 36


# --- AsyncExecutor --------------------------------------------------------------------------------


async def test_async_executor_thread_exit_fails_only_the_task() -> None:
    async with toolkit.AsyncExecutor(cf.ThreadPoolExecutor(1)) as executor:
        thread = await executor.run(_helpers.thread_id)
        for fn, args, kind, code in _EXITS:
            error = await _task_exit(executor.run(fn, *args))
            _check(error, kind, code, remote=False)
            assert await executor.run(_helpers.square, 7) == 49
        exit_on_2 = functools.partial(_helpers.exit_on, 2)
        _check(await _task_exit(executor.map(exit_on_2, range(5))), "SystemExit", 2, remote=False)
        error = await _task_exit(executor.map(exit_on_2, range(5), chunksize=5))
        _check(error, "SystemExit", 2, remote=False)
        assert await executor.map(_helpers.square, range(4)) == [0, 1, 4, 9]
        assert await executor.run(_helpers.thread_id) == thread


async def test_async_executor_process_exit_fails_only_the_task(mp_context: BaseContext) -> None:
    pool = cf.ProcessPoolExecutor(1, mp_context=mp_context)
    async with toolkit.AsyncExecutor(pool) as executor:
        worker = await executor.run(_helpers.pid)
        for fn, args, kind, code in _EXITS:
            error = await _task_exit(executor.run(fn, *args))
            _check(error, kind, code, remote=True)
            assert await executor.run(_helpers.square, 7) == 49
        exit_on_2 = functools.partial(_helpers.exit_on, 2)
        _check(await _task_exit(executor.map(exit_on_2, range(5))), "SystemExit", 2, remote=True)
        error = await _task_exit(executor.map(exit_on_2, range(5), chunksize=5))
        _check(error, "SystemExit", 2, remote=True)
        assert await executor.map(_helpers.square, range(4)) == [0, 1, 4, 9]
        assert await executor.run(_helpers.pid) == worker  # the same worker process


# --- end to end: the caller's program goes on -----------------------------------------------------

_PROGRAM = """
import sys

import toolkit


async def main(method):
    async with toolkit.Pool(1, context=method) as pool:
        try:
            await pool.apply(sys.exit, (3,))
        except Exception as exc:
            print("handled", type(exc).__name__, exc.code, flush=True)
        print("goes on", flush=True)


if __name__ == "__main__":
    toolkit.run(main(sys.argv[1]))
"""


def test_run_program_goes_on_after_a_task_sys_exit(tmp_path: Path, mp_context: BaseContext) -> None:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(_PROGRAM), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), mp_context.get_start_method()],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    details = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, details  # 3 before: the task's sys.exit ended the program
    assert done.stdout.splitlines() == ["handled TaskExitError 3", "goes on"], details
