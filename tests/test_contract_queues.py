"""The queue contract: one suite that every queue-like passes.

The kinds: toolkit.Queue, JoinableQueue, SimpleQueue, and a manager's Queue
proxy. Each test states one promise of docs/ipc.md (sections 3 and 4) and
docs/managers.md (section 3), on both loops. A kind without a feature (a
SimpleQueue has no timeout and no bound) is skipped for that test, with the
reason in its parametrisation.
"""

from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers
from tests._contracts import ManagerServer, serving_manager, settle
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class QueueKind:
    name: str
    make: Callable[[int], Any] | None = None  # a toolkit queue of that maxsize, made here
    make_proxy: Callable[[toolkit.Manager, int], Awaitable[Any]] | None = None  # or a proxy
    missing: dict[str, str] = field(default_factory=dict)  # feature -> why this kind lacks it


def _simple_queue(maxsize: int) -> toolkit.SimpleQueue[Any]:
    assert maxsize == 0, "a SimpleQueue has no bound"
    return toolkit.SimpleQueue()


KINDS = [
    QueueKind("Queue", make=lambda maxsize: toolkit.Queue(maxsize)),
    QueueKind("JoinableQueue", make=lambda maxsize: toolkit.JoinableQueue(maxsize)),
    QueueKind(
        "SimpleQueue",
        make=_simple_queue,
        missing={
            "get timeout": "SimpleQueue.get() takes no timeout (as multiprocessing.SimpleQueue)",
            "maxsize": "a SimpleQueue has no bound, no put_nowait and no QueueFull",
        },
    ),
    QueueKind(
        "Manager.Queue",
        make_proxy=lambda m, maxsize: m.Queue(maxsize),
        missing={"async for": "a manager's QueueProxy has no __aiter__ (nor has the stdlib's)"},
    ),
]


def kinds(feature: str | None = None) -> list[Any]:
    """The kinds, each marked skip (saying why) when it lacks feature."""
    params = []
    for kind in KINDS:
        reason = kind.missing.get(feature) if feature else None
        marks = [pytest.mark.skip(reason=f"{kind.name}: {reason}")] if reason else []
        params.append(pytest.param(kind, id=kind.name, marks=marks))
    return params


@pytest.fixture(scope="module")
def manager_server() -> Iterator[ManagerServer]:
    with serving_manager() as server:
        yield server


@pytest.fixture
async def new_queue(
    kind: QueueKind, manager_server: ManagerServer
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Make queues of the kind under test (``await new_queue(maxsize=0)``); close them after."""
    made: list[Any] = []
    manager: toolkit.Manager | None = None

    async def make(maxsize: int = 0) -> Any:
        nonlocal manager
        if kind.make is not None:
            made.append(kind.make(maxsize))
            return made[-1]
        assert kind.make_proxy is not None
        if manager is None:
            manager = await manager_server.connect()
        return await kind.make_proxy(manager, maxsize)

    try:
        yield make
    finally:
        for q in made:
            q.close()
            if isinstance(q, toolkit.Queue):  # its feeder thread flushes, then ends
                await toolkit.to_thread(q.join_thread)
        if manager is not None:
            await manager.shutdown()


async def _get(q: Any) -> Any:
    """One item, bounded: a get that hangs fails the test rather than the run."""
    return await asyncio.wait_for(q.get(), 10)


async def _not_empty(q: Any) -> bool:
    return not await settle(q.empty())


# --- the contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", kinds())
async def test_queue_is_fifo(new_queue: Callable[..., Awaitable[Any]]) -> None:
    q = await new_queue()
    for i in range(50):
        await q.put(i)
    assert [await _get(q) for _ in range(50)] == list(range(50))


@pytest.mark.parametrize("kind", kinds())
async def test_queue_get_nowait_on_empty_raises_queue_empty(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    q = await new_queue()
    with pytest.raises(toolkit.QueueEmpty) as info:
        await settle(q.get_nowait())  # a plain call on toolkit queues, a coroutine on proxies
    assert isinstance(info.value, queue.Empty)
    assert isinstance(info.value, asyncio.QueueEmpty)
    await q.put("there")
    await wait_until(lambda: _not_empty(q))  # a Queue's feeder thread writes it a moment later
    assert await settle(q.get_nowait()) == "there"
    with pytest.raises(queue.Empty):
        await settle(q.get_nowait())


@pytest.mark.parametrize("kind", kinds())
async def test_queue_put_and_get_across_a_child_process(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    """The parent puts, a plain child gets (``.sync``) and puts back, the parent gets."""
    inbox, outbox = await new_queue(), await new_queue()
    async with asyncio.timeout(30):
        async with toolkit.Process(target=_helpers.relay_doubled, args=(inbox, outbox, 5)) as child:
            for i in range(5):
                await inbox.put(i)
            assert [await outbox.get() for _ in range(5)] == [0, 2, 4, 6, 8]
    assert child.exitcode == 0


@pytest.mark.parametrize("kind", kinds())
async def test_queue_get_cancelled_while_waiting_drops_nothing(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    q = await new_queue()
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.05)  # let it reach its wait
    assert not getter.done()
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    await q.put("the only item")
    assert await _get(q) == "the only item"


@pytest.mark.parametrize("kind", kinds())
async def test_queue_get_cancelled_as_an_item_arrives_drops_nothing(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    """Cancelled just after the put: the getter either got the item, or left it for the next get."""
    q = await new_queue()
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.05)
    assert not getter.done()
    await q.put("the only item")
    getter.cancel()
    (outcome,) = await asyncio.wait_for(asyncio.gather(getter, return_exceptions=True), 10)
    if isinstance(outcome, asyncio.CancelledError):
        assert await _get(q) == "the only item"
    else:
        assert outcome == "the only item"
    await q.put("next")
    assert await _get(q) == "next"  # and the first one was not there twice


@pytest.mark.parametrize("kind", kinds("get timeout"))
async def test_queue_get_timeout_raises_queue_empty(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    q = await new_queue()
    begin = time.monotonic()
    with pytest.raises(toolkit.QueueEmpty) as info:
        await q.get(timeout=0.05)
    elapsed = time.monotonic() - begin
    assert isinstance(info.value, queue.Empty)
    assert 0.04 <= elapsed < 2.0, f"get(timeout=0.05) raised after {elapsed:.3f} s"
    await q.put("late")  # nothing was left waiting to take it
    assert await _get(q) == "late"


@pytest.mark.parametrize("kind", kinds("async for"))
async def test_queue_async_for_yields_items_as_they_come(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    q = await new_queue()
    for item in [*range(5), None]:
        await q.put(item)
    got = []
    async with asyncio.timeout(10):
        async for item in q:
            if item is None:
                break
            got.append(item)
    assert got == list(range(5))


@pytest.mark.parametrize("kind", kinds("maxsize"))
async def test_queue_maxsize_and_put_nowait_raise_queue_full(
    new_queue: Callable[..., Awaitable[Any]],
) -> None:
    q = await new_queue(maxsize=2)
    await q.put(0)
    await settle(q.put_nowait(1))
    with pytest.raises(toolkit.QueueFull) as info:
        await settle(q.put_nowait(2))
    assert isinstance(info.value, queue.Full)
    assert isinstance(info.value, asyncio.QueueFull)
    begin = time.monotonic()
    with pytest.raises(toolkit.QueueFull):
        await q.put(2, timeout=0.05)
    elapsed = time.monotonic() - begin
    assert 0.04 <= elapsed < 2.0, f"put(timeout=0.05) on a full queue raised after {elapsed:.3f} s"
    assert await _get(q) == 0
    # The get made room. The timed-out put's helper may still be completing
    # and take that room for a moment before it hands it back (DESIGN,
    # "Cancellation never loses or leaks"): room again within moments.
    begin = time.monotonic()
    while True:
        try:
            await settle(q.put_nowait(2))
            break
        except toolkit.QueueFull:
            assert time.monotonic() - begin < 0.1, "the room the get made was not handed back"
            await asyncio.sleep(0.001)
    assert [await _get(q), await _get(q)] == [1, 2]
