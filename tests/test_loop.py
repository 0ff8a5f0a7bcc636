"""toolkit.run: the result, the choice of loop, bad input, and nothing left running afterwards.

Sync tests: toolkit.run makes its own loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import multiprocessing
import os
import threading

import pytest

import toolkit
from tests import _helpers

requires_uvloop = pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
)


def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def _to_thread_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("toolkit-to_thread")]


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_run_returns_the_result() -> None:
    assert toolkit.run(_answer()) == 42


def test_run_raises_the_coroutines_exception() -> None:
    async def fail() -> None:
        raise _helpers.CustomError("from main")

    with pytest.raises(_helpers.CustomError, match="from main"):
        toolkit.run(fail())


@requires_uvloop
def test_run_uvloop_true_runs_on_uvloop() -> None:
    async def main() -> str:
        return _loop_module()

    assert toolkit.run(main(), uvloop=True).startswith("uvloop")


def test_run_uvloop_false_runs_on_asyncio() -> None:
    async def main() -> str:
        return _loop_module()

    assert toolkit.run(main(), uvloop=False).startswith("asyncio")


@requires_uvloop
def test_run_uses_uvloop_by_default_when_installed() -> None:
    async def main() -> str:
        return _loop_module()

    assert toolkit.run(main()).startswith("uvloop")


@pytest.mark.parametrize("debug", [True, False])
def test_run_passes_debug(debug: bool) -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert toolkit.run(main(), uvloop=False, debug=debug) is debug


def test_run_uses_a_new_loop_each_time() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())

    toolkit.run(main())
    toolkit.run(main())
    assert loops[0] is not loops[1]
    assert all(loop.is_closed() for loop in loops)


def test_run_cancels_leftover_tasks() -> None:
    cancelled = threading.Event()

    async def forever(started: asyncio.Event) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    # Held here: a pending task nothing refers to is a garbage cycle (task,
    # coroutine, the event it waits on), which the collector may destroy
    # before the run gets to cancel it (seen once on 3.12).
    leftovers: list[asyncio.Task[None]] = []

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(forever(started))
        leftovers.append(task)
        await started.wait()
        assert not task.done()

    toolkit.run(main())
    assert cancelled.is_set()
    assert leftovers[0].cancelled()


@pytest.mark.parametrize("not_a_coroutine", [42, None, _answer, asyncio.sleep])
def test_run_rejects_a_non_coroutine(not_a_coroutine: object) -> None:
    with pytest.raises(TypeError, match="coroutine"):
        toolkit.run(not_a_coroutine)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["yes", 1, 0])
def test_run_rejects_a_non_bool_uvloop(bad: object) -> None:
    coro = _answer()
    try:
        with pytest.raises(TypeError, match="uvloop"):
            toolkit.run(coro, uvloop=bad)  # type: ignore[arg-type]
    finally:
        coro.close()  # never started: close it, or it warns "never awaited"


# --- the default executors are shut down on the way out ----------------------------------------


@pytest.mark.parametrize("use_uvloop", [pytest.param(True, marks=requires_uvloop), False])
def test_run_shuts_down_the_to_thread_threads(use_uvloop: bool) -> None:
    async def main() -> int:
        # Several concurrent calls, so that more than one cached thread exists.
        gate = threading.Barrier(3)
        idents = await asyncio.gather(
            *(toolkit.to_thread(_wait_then_ident, gate) for _ in range(3))
        )
        assert _to_thread_threads(), "to_thread should have started cached threads"
        return len(set(idents))

    assert toolkit.run(main(), uvloop=use_uvloop) == 3
    assert _to_thread_threads() == []


def _wait_then_ident(gate: threading.Barrier) -> int:
    gate.wait(10)
    return threading.get_ident()


def test_run_shuts_down_the_to_process_workers(default_executors: None) -> None:
    before = set(multiprocessing.active_children())

    async def main() -> int:
        pid = await toolkit.to_process(os.getpid)
        assert multiprocessing.active_children(), "to_process should have started workers"
        return pid

    assert toolkit.run(main()) != os.getpid()
    # No child of this run is left (the set is empty unless an earlier test kept its own).
    assert set(multiprocessing.active_children()) - before == set()


def test_run_shuts_down_executors_after_an_exception() -> None:
    async def main() -> None:
        await toolkit.to_thread(int, "1")
        raise _helpers.CustomError("after to_thread")

    with pytest.raises(_helpers.CustomError):
        toolkit.run(main())
    assert _to_thread_threads() == []


def test_run_lets_to_thread_start_afresh_after_shutdown() -> None:
    async def main() -> int:
        return await toolkit.to_thread(sum, [1, 2, 3])

    assert toolkit.run(main()) == 6
    assert toolkit.run(main()) == 6
    assert _to_thread_threads() == []


def test_run_carries_context_into_to_thread() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> str:
        var.set("inside")
        return await toolkit.to_thread(var.get)

    assert toolkit.run(main()) == "inside"
