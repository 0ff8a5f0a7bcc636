"""toolkit.Manager and BaseManager: real server processes, both loops, two start methods."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import multiprocessing.managers
import os
import queue
import random
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _manager_helpers as helpers
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.context import BaseContext


# --- the tutorial's example ----------------------------------------------------------------------


@pytest.mark.parametrize("child", [helpers.tutorial_child, helpers.tutorial_child_async])
async def test_manager_tutorial_example_child_sets_everything(
    mp_context: BaseContext, child: Callable[..., None]
) -> None:
    async with toolkit.Manager(context=mp_context) as m:
        d = await m.dict()
        l = await m.list(range(10))  # noqa: E741 - the tutorial's name
        n = await m.Namespace(parent=os.getpid())
        v = await m.Value("d", 0.0)
        a = await m.Array("i", range(10))
        async with toolkit.Process(target=child, args=(d, l, n, v, a), context=mp_context) as p:
            await p.join()
        assert p.exitcode == 0
        assert await d.copy() == {1: "1", "2": 2, 0.25: None}
        assert await l.copy() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, "child"]
        attributes = await n.copy()
        assert attributes["parent"] == os.getpid()
        assert attributes["child"] == p.pid
        assert await v.get() == pytest.approx(3.1415927)
        assert await a.copy() == [-1, *range(1, 10)]


async def test_manager_every_type_and_method() -> None:
    async with toolkit.Manager() as m:
        d = await m.dict({"a": 1})
        await d.setitem("b", 2)
        assert await d.getitem("b") == 2
        assert await d.contains("a")
        assert await d.len() == 2
        assert await d.setdefault("c", 3) == 3
        assert sorted(await d.keys()) == ["a", "b", "c"]
        assert sorted(await d.values()) == [1, 2, 3]
        assert await d.pop("c") == 3
        assert await d.pop("zz", "default") == "default"
        await d.delitem("b")
        assert await d.items() == [("a", 1)]
        assert await d.popitem() == ("a", 1)
        await d.update(x=1)
        await d.clear()
        assert await d.copy() == {}
        with pytest.raises(KeyError):
            await d.getitem("missing")

        l = await m.list([3, 1, 2])  # noqa: E741
        await l.extend(x for x in [5])
        await l.insert(0, 0)
        await l.sort()
        assert await l.copy() == [0, 1, 2, 3, 5]
        assert await l.index(2) == 2
        assert await l.count(5) == 1
        assert await l.pop() == 5
        await l.remove(0)
        await l.reverse()
        await l.setitem(0, 30)
        await l.delitem(-1)
        assert await l.copy() == [30, 2]
        assert await l.contains(2)
        assert await l.len() == 2

        n = await m.Namespace(x=1)
        await n.setattr("y", 2)
        await n.delattr("x")
        assert await n.getattr("y") == 2
        with pytest.raises(AttributeError):
            await n.getattr("x")
        assert await n.copy() == {"y": 2}

        a = await m.Array("d", 3)
        assert await a.copy() == [0.0, 0.0, 0.0]
        assert await a.len() == 3

        assert await m._number_of_objects() == 4


# --- many coroutines, a bounded pool ------------------------------------------------------------


async def test_manager_200_coroutines_lose_nothing_and_threads_stay_bounded() -> None:
    async with toolkit.Manager(connections=4) as m:
        d = await m.dict()
        l = await m.list()  # noqa: E741
        await d.get("warm-up")
        threads_before = threading.active_count()
        most = 0

        async def work(i: int) -> None:
            nonlocal most
            await d.update({i: i * i})
            await l.append(i)
            most = max(most, threading.active_count())

        await asyncio.gather(*(work(i) for i in range(200)))
        assert await d.copy() == {i: i * i for i in range(200)}
        assert sorted(await l.copy()) == list(range(200))
        pool = d._pool
        assert pool.connections() <= 4
        # Opening connections runs the stdlib handshake in to_thread's threads: at
        # most one per connection, whatever the number of callers.
        assert most - threads_before <= 4


async def test_manager_cancelled_calls_never_get_each_others_replies() -> None:
    rng = random.Random(8)
    async with toolkit.Manager(connections=2) as m:
        d = await m.dict({i: f"value {i}" for i in range(300)})
        wrong: list[tuple[int, Any]] = []

        async def check(i: int) -> None:
            value = await d.get(i)
            if value != f"value {i}":
                wrong.append((i, value))

        for _ in range(5):
            tasks = [asyncio.ensure_future(check(i)) for i in range(300)]
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            for task in rng.sample(tasks, 150):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert wrong == []
        assert await d.get(7) == "value 7"  # the connections are still in step


async def test_manager_blocking_call_does_not_stall_other_calls() -> None:
    async with toolkit.Manager(connections=1) as m:
        q = await m.Queue()
        d = await m.dict(a=1)
        getters = [asyncio.ensure_future(q.get()) for _ in range(3)]
        await asyncio.sleep(0)
        async with asyncio.timeout(5):
            for _ in range(20):
                assert await d.get("a") == 1
        assert not any(g.done() for g in getters)
        for i in range(3):
            await q.put(i)
        assert sorted(await asyncio.gather(*getters)) == [0, 1, 2]


async def test_manager_many_blocked_getters_share_one_connection() -> None:
    async with toolkit.Manager() as m:
        q = await m.Queue()
        event = await m.Event()
        getters = [asyncio.ensure_future(q.get(timeout=30)) for _ in range(500)]
        waiters = [asyncio.ensure_future(event.wait(timeout=30)) for _ in range(500)]
        await q.qsize()
        await wait_until(lambda: _opened(q, 3))
        await asyncio.sleep(0.1)
        assert q._pool.connections() <= 4  # not one per waiting coroutine
        for i in range(500):
            await q.put(i)
        await event.set()
        assert sorted(await asyncio.gather(*getters)) == list(range(500))
        assert all(await asyncio.gather(*waiters))


# --- queues --------------------------------------------------------------------------------------


async def test_manager_queue_timeouts_and_nowait() -> None:
    async with toolkit.Manager() as m:
        q = await m.Queue(maxsize=1)
        with pytest.raises(toolkit.QueueEmpty):
            await q.get_nowait()
        started = time.monotonic()
        with pytest.raises(queue.Empty):
            await q.get(timeout=0.3)
        assert 0.25 < time.monotonic() - started < 3
        await q.put_nowait(1)
        assert await q.full()
        with pytest.raises(toolkit.QueueFull):
            await q.put_nowait(2)
        with pytest.raises(queue.Full):
            await q.put(2, timeout=0.05)
        putter = asyncio.ensure_future(q.put(3))
        assert await q.get() == 1
        await asyncio.wait_for(putter, 5)
        assert await q.qsize() == 1
        assert await q.get(block=False) == 3
        assert await q.empty()
        with pytest.raises(ValueError, match="timeout"):
            await q.get(timeout=-1)


async def test_manager_joinable_queue_join() -> None:
    async with toolkit.Manager() as m:
        q = await m.JoinableQueue()
        await q.put("job")
        joined = asyncio.ensure_future(q.join())
        assert await q.get() == "job"
        await asyncio.sleep(0.05)
        assert not joined.done()
        await q.task_done()
        await asyncio.wait_for(joined, 5)


async def test_manager_queue_random_cancellations_lose_nothing(mp_context: BaseContext) -> None:
    count = 1000
    rng = random.Random(6)
    async with toolkit.Manager(context=mp_context) as m:
        q = await m.Queue()
        got: list[int] = []
        cancelled = 0
        async with toolkit.Process(
            target=helpers.produce_sync, args=(q, count), context=mp_context
        ) as producer:
            while cancelled < 1000:  # 1,000 gets cancelled at random points of their course
                getter = asyncio.ensure_future(q.get(timeout=30))
                for _ in range(rng.randrange(6)):
                    await asyncio.sleep(0)
                getter.cancel()
                try:
                    got.append(await getter)
                except asyncio.CancelledError:
                    cancelled += 1
            while len(got) < count:
                got.append(await q.get(timeout=30))
            await producer.join()
        assert producer.exitcode == 0
        assert sorted(got) == list(range(count))  # nothing lost, nothing twice
        with pytest.raises(toolkit.QueueEmpty):
            await q.get(timeout=0.3)  # nothing left over either (late items came back, once)


# --- locks, conditions, events, barriers ---------------------------------------------------------


async def test_manager_lock_cancelled_acquire_never_leaves_it_held() -> None:
    rng = random.Random(7)
    async with toolkit.Manager() as m:
        lock = await m.Lock()
        for _ in range(30):
            assert await lock.acquire()
            waiter = asyncio.ensure_future(lock.acquire())
            await asyncio.sleep(rng.random() * 0.01)
            waiter.cancel()
            await lock.release()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            # A late acquisition made for the cancelled waiter is given back.
            assert await lock.acquire(timeout=5)
            await lock.release()
        # (A cancelled waiter's slice may still take it for an instant, and give it back.)
        assert await lock.acquire(timeout=5)
        assert not await lock.acquire(blocking=False)
        assert not await lock.acquire(timeout=0.05)
        await lock.release()


async def test_manager_semaphore_random_cancellations_leak_nothing() -> None:
    rng = random.Random(9)
    async with toolkit.Manager() as m:
        sem = await m.Semaphore(3)
        held = 0
        most = 0

        async def user() -> None:
            nonlocal held, most
            async with sem:
                held += 1
                most = max(most, held)
                await asyncio.sleep(rng.random() * 0.002)
                held -= 1

        tasks = [asyncio.ensure_future(user()) for _ in range(300)]
        for task in tasks:
            if rng.random() < 0.5:
                for _ in range(rng.randrange(4)):
                    await asyncio.sleep(0)
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert most <= 3
        # Every slot came back: three acquire at once (late acquisitions were released).
        for _ in range(3):
            assert await sem.acquire(timeout=5)
        assert not await sem.acquire(timeout=0.05)


async def test_manager_semaphore_and_bounded_semaphore() -> None:
    async with toolkit.Manager() as m:
        sem = await m.Semaphore(2)
        assert await sem.acquire()
        assert await sem.acquire()
        assert not await sem.acquire(blocking=False)
        await sem.release()
        async with sem:
            pass
        bounded = await m.BoundedSemaphore(1)
        with pytest.raises(ValueError, match="too many"):
            await bounded.release()


async def test_manager_rlock_is_owned_by_the_task() -> None:
    async with toolkit.Manager() as m:
        rlock = await m.RLock()
        async with rlock, rlock:  # re-entrant in one task
            other = asyncio.ensure_future(rlock.acquire(timeout=0.2))
            assert not await other  # another task cannot take it meanwhile
        with pytest.raises(RuntimeError, match="un-acquired"):
            await rlock.release()
        assert await asyncio.ensure_future(rlock.acquire(timeout=5))  # free again, for anyone


async def test_manager_condition_wait_and_notify() -> None:
    async with toolkit.Manager() as m:
        cond = await m.Condition()
        ready = await m.list()
        woken = asyncio.Event()

        async def waiter() -> None:
            async with cond:
                assert await cond.wait_for(lambda: True)
                await ready.append("waiting")
                assert await cond.wait(timeout=10)
                woken.set()

        task = asyncio.ensure_future(waiter())
        await wait_until(ready.len)
        async with cond:
            await cond.notify_all()
        await asyncio.wait_for(woken.wait(), 10)
        await task
        async with cond:
            assert not await cond.wait(timeout=0.05)
        with pytest.raises(RuntimeError, match="un-acquired"):
            await cond.wait()
        with pytest.raises(RuntimeError):
            await cond.notify()


async def test_manager_event_and_barrier() -> None:
    async with toolkit.Manager() as m:
        event = await m.Event()
        assert not await event.is_set()
        assert not await event.wait(timeout=0.05)
        waiting = asyncio.ensure_future(event.wait())
        await event.set()
        assert await asyncio.wait_for(waiting, 5)
        await event.clear()
        assert not await event.is_set()

        barrier = await m.Barrier(3)
        assert await barrier.parties() == 3
        indexes = await asyncio.gather(*(barrier.wait(timeout=10) for _ in range(3)))
        assert sorted(indexes) == [0, 1, 2]
        assert not await barrier.broken()
        assert await barrier.n_waiting() == 0
        await barrier.abort()
        with pytest.raises(threading.BrokenBarrierError):
            await barrier.wait()
        await barrier.reset()


async def test_manager_condition_over_a_shared_lock_and_nested_proxies() -> None:
    async with toolkit.Manager() as m:
        lock = await m.Lock()
        cond = await m.Condition(lock)
        async with cond:
            assert not await cond.wait(timeout=0.01)
        d = await m.dict()
        q = await m.Queue()
        await d.setitem("queue", q)  # a proxy stored in a shared dict
        again = await d.getitem("queue")
        assert isinstance(again, type(q))
        await again.put("through the stored proxy")
        assert await q.get(timeout=5) == "through the stored proxy"
        with pytest.raises(TypeError):
            await d.setitem("bad", threading.Lock())  # unpicklable: fails at the call
        assert await d.get("queue") is not None  # the connection is still in step


async def test_manager_fork_child_uses_its_own_connections() -> None:
    fork = multiprocessing.get_context("fork")
    async with toolkit.Manager() as m:
        d = await m.dict()
        q = await m.Queue()
        await d.setitem("parent", 0)  # the parent's connections exist before the fork
        async with toolkit.Process(
            target=helpers.fork_child_awaits, args=(d, q), context=fork
        ) as child:
            for i in range(50):
                await d.setitem(("parent", i), i)
            assert await q.get(timeout=30) == "child done"
            await child.join()
        assert child.exitcode == 0
        copy = await d.copy()
        assert all(copy[("child", i)] == i and copy[("parent", i)] == i for i in range(50))


# --- custom types --------------------------------------------------------------------------------


class CounterManager(toolkit.BaseManager):
    pass


CounterManager.register("Counter", helpers.Counter)
CounterManager.register("Shared", dict, multiprocessing.managers.DictProxy)


async def test_base_manager_register_custom_type(mp_context: BaseContext) -> None:
    async with CounterManager(context=mp_context) as m:
        counter = await m.Counter(10)  # type: ignore[attr-defined]
        assert await counter.add(5) == 15
        assert await counter.get() == 15
        with pytest.raises(LookupError, match="nothing here"):
            await counter.fail()
        with pytest.raises(AttributeError, match="no exposed method"):
            counter.count  # noqa: B018 - an attribute, not an exposed method
        assert counter.sync.add() == 16  # the stdlib proxy of the same object
        shared = await m.Shared(a=1)  # type: ignore[attr-defined]
        assert await shared.get("a") == 1
        assert type(shared).__name__ == "DictProxy"
    assert not hasattr(toolkit.Manager, "Counter")  # registered on the subclass only


class OwnProxyManager(toolkit.BaseManager):
    pass


OwnProxyManager.register("Counter", helpers.Counter, proxytype=helpers.make_counter_proxy_type())


async def test_base_manager_register_a_toolkit_proxy_type() -> None:
    async with OwnProxyManager() as m:
        counter = await m.Counter(1)  # type: ignore[attr-defined]
        assert await counter.twice() == 3
        assert (await counter.copy()).count == 3  # the object itself, pickled
        with pytest.raises(multiprocessing.managers.RemoteError, match="not in exposed"):
            await counter._callmethod("fail")  # as the stdlib: the server refuses it
        assert counter.sync.get() == 3


async def test_toolkit_client_of_a_plain_stdlib_server() -> None:
    plain = toolkit.get_context().Manager()  # the stdlib's SyncManager, its own server
    try:
        key = bytes(multiprocessing.current_process().authkey)
        async with await toolkit.Manager.connect(plain.address, authkey=key) as m:
            d = await m.dict(a=1)
            await d.setitem("b", 2)
            assert await d.copy() == {"a": 1, "b": 2}
            q = await m.Queue()
            await q.put("x")
            assert await q.get(timeout=5) == "x"
            del d, q
    finally:
        plain.shutdown()


def test_base_manager_register_bad_input() -> None:
    with pytest.raises(ValueError, match="identifier"):
        CounterManager.register("not an identifier", dict)
    with pytest.raises(TypeError, match="callable"):
        CounterManager.register("Thing", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="proxytype"):
        CounterManager.register("Thing", dict, proxytype=int)


# --- remote managers -----------------------------------------------------------------------------


async def test_manager_remote_client_with_the_right_key_and_a_wrong_one(
    mp_context: BaseContext,
) -> None:
    async with toolkit.Manager(address=("127.0.0.1", 0), authkey=b"right", context=mp_context) as m:
        host, port = m.address
        assert host == "127.0.0.1"
        assert port != 0
        assert m.pid is not None
        assert m.pid != os.getpid()
        results = []
        for key in (b"right", b"wrong"):
            reader, writer = toolkit.Pipe(duplex=False)
            async with toolkit.Process(
                target=helpers.connect_and_use, args=(m.address, key, writer), context=mp_context
            ):
                results.append(await asyncio.wait_for(reader.recv(), 30))
        assert results == [{"x": 42}, "AuthenticationError"]
        started = time.monotonic()
        with pytest.raises(multiprocessing.AuthenticationError):
            await toolkit.Manager.connect(m.address, authkey=b"wrong")
        assert time.monotonic() - started < 1


async def test_manager_plain_syncmanager_client_interoperates(mp_context: BaseContext) -> None:
    async with toolkit.Manager(address=("127.0.0.1", 0), authkey=b"key", context=mp_context) as m:
        shared = await m.dict({"from toolkit": "hello"})
        reader, writer = toolkit.Pipe(duplex=False)
        async with toolkit.Process(
            target=helpers.stdlib_client,
            args=(m.address, b"key", shared.sync, writer),
            context=mp_context,
        ) as p:
            assert await asyncio.wait_for(reader.recv(), 30) == "hello"
            await p.join()
        assert p.exitcode == 0
        assert await shared.get("from stdlib") == [0, 1, 2, 3]


async def test_manager_connect_to_nothing_is_refused() -> None:
    async with toolkit.Manager(address=("127.0.0.1", 0)) as m:
        address = m.address
    with pytest.raises(ConnectionError):
        await toolkit.Manager.connect(address)


async def test_manager_connected_manager_shares_objects() -> None:
    async with toolkit.Manager(address=("127.0.0.1", 0), authkey=b"k") as m:
        client = await toolkit.Manager.connect(m.address, authkey=b"k")
        async with client:
            assert client.pid is None
            assert client.is_alive()
            q = await client.Queue()
            await q.put("through the client")
            assert await q.get() == "through the client"
        assert not client.is_alive()
        assert m.is_alive()  # leaving a connected manager does not stop the server


# --- the manager dying ---------------------------------------------------------------------------


async def test_manager_killed_fails_pending_and_later_calls_fast() -> None:
    m = toolkit.Manager()
    await m.start()
    q = await m.Queue()
    lock = await m.Lock()
    await lock.acquire()
    d = await m.dict()
    pending = [asyncio.ensure_future(q.get()) for _ in range(40)]
    pending += [asyncio.ensure_future(lock.acquire()) for _ in range(10)]
    # The 40 getters share one server-side get, the 10 acquirers one acquire.
    await wait_until(lambda: _opened(d, 3))
    assert m.is_alive()
    started = time.monotonic()
    assert m.pid is not None
    os.kill(m.pid, signal.SIGKILL)
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
    assert time.monotonic() - started < 1
    assert all(isinstance(r, toolkit.ManagerDiedError) for r in results), results
    assert all(isinstance(r, ConnectionError) for r in results)
    assert not m.is_alive()
    with pytest.raises(toolkit.ManagerDiedError, match=f"manager process {m.pid} .* is gone"):
        await d.get("x")
    with pytest.raises(toolkit.ManagerDiedError):
        await m.dict()
    await m.shutdown()
    with pytest.raises(toolkit.ClosedError):
        await m.dict()


async def _opened(proxy: Any, count: int) -> bool:
    return bool(proxy._pool.connections() >= count)


# --- lifetime, pickling, bad input ---------------------------------------------------------------


async def test_manager_proxies_give_their_references_back() -> None:
    async with toolkit.Manager() as m:
        d = await m.dict(a=1)
        l = await m.list()  # noqa: E741
        assert await m._number_of_objects() == 2
        assert d.sync.get("a") == 1  # a stdlib proxy: one more reference
        del d, l
        gc.collect()
        await wait_until(lambda: _objects_are(m, 0))


async def _objects_are(m: toolkit.Manager, count: int) -> bool:
    return bool(await m._number_of_objects() == count)


async def test_manager_create_cancelled_after_its_request_went_out_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server makes the object; its answer comes back after the caller was
    # cancelled (held 0.3 s here): the reference taken for it is given back.
    async with toolkit.Manager() as m:
        pool = m._running()
        real = pool.server_call
        answered = asyncio.Event()

        async def slow_answer(method: str, *args: Any, **kwds: Any) -> Any:
            result = await real(method, *args, **kwds)
            if method == "create":
                await asyncio.sleep(0.3)
                answered.set()
            return result

        monkeypatch.setattr(pool, "server_call", slow_answer)
        creating = asyncio.ensure_future(m.dict(a=1))
        await wait_until(lambda: _objects_are(m, 1))  # made in the server
        creating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await creating
        async with asyncio.timeout(10):  # the answer still came, for nobody
            await answered.wait()
        await wait_until(lambda: _objects_are(m, 0))


async def test_manager_bad_input_and_states() -> None:
    with pytest.raises(TypeError, match="authkey"):
        toolkit.Manager(authkey="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connections"):
        toolkit.Manager(connections=0)
    with pytest.raises(ValueError, match="pair"):
        toolkit.Manager(address=("127.0.0.1", 0, 0))
    m = toolkit.Manager()
    with pytest.raises(toolkit.ClosedError, match="not started"):
        await m.dict()
    with pytest.raises(TypeError, match="initializer"):
        await m.start(initializer=42)  # type: ignore[arg-type]
    async with m:
        with pytest.raises(multiprocessing.ProcessError):
            await m.start()
        pending = asyncio.ensure_future((await m.Event()).wait())
        await asyncio.sleep(0.05)
    with pytest.raises(toolkit.ClosedError, match="shut down"):
        await pending
    assert not m.is_alive()
    await m.shutdown()  # twice is fine


@pytest.mark.parametrize("delay", [0, 0.005, 0.05])
async def test_manager_cancelled_start_leaves_no_process(delay: float) -> None:
    m = toolkit.Manager()
    starting = asyncio.ensure_future(m.start())
    await asyncio.sleep(delay)
    starting.cancel()
    try:
        await starting
    except asyncio.CancelledError:
        assert not m.is_alive()
        with pytest.raises(multiprocessing.ProcessError):
            await m.start()  # a manager starts once
    else:  # it had started already: then it runs, until shut down
        assert m.is_alive()
        await m.shutdown()
    # (the no_leaks fixture checks that no server process is left behind)


async def test_manager_initializer_failures_fail_start(mp_context: BaseContext) -> None:
    with pytest.raises(LookupError, match="no config"):
        await toolkit.Manager(context=mp_context).start(helpers.fail_to_initialize, ("no config",))
    with pytest.raises(multiprocessing.ProcessError, match="exit code 3"):
        await toolkit.Manager(context=mp_context).start(helpers.exit_now)


async def test_manager_address_in_use_fails_at_start() -> None:
    async with toolkit.Manager(address=("127.0.0.1", 0)) as m:
        with pytest.raises(OSError, match="in use"):
            await toolkit.Manager(address=m.address).start()


def test_manager_sync_api_in_plain_code() -> None:
    async def make() -> tuple[toolkit.Manager, Any]:
        m = toolkit.Manager()
        await m.start()
        return m, await m.dict(a=1)

    async def stop(m: toolkit.Manager) -> None:
        await m.shutdown()

    m, d = asyncio.run(make())
    try:
        plain = m.sync
        assert isinstance(plain, multiprocessing.managers.BaseManager)
        assert d.sync.get("a") == 1
        other = plain.list([1, 2])  # type: ignore[attr-defined]
        assert other[1] == 2
        del other
    finally:
        asyncio.run(stop(m))


def test_manager_proxies_work_on_a_later_loop_after_one_ended_mid_call() -> None:
    async def first() -> tuple[toolkit.BaseManager, Any]:
        m = CounterManager()
        await m.start()
        counter = await m.Counter(7)  # type: ignore[attr-defined]
        slow = asyncio.ensure_future(counter.slow(0.3))
        await asyncio.sleep(0.05)  # the slow call is in flight: the next ones queue behind it
        pending = [asyncio.ensure_future(counter.get()) for _ in range(20)]
        await asyncio.sleep(0)
        assert not slow.done()
        assert not any(task.done() for task in pending)
        return m, counter  # the loop ends with replies still owed

    async def second(counter: Any) -> list[Any]:
        return list(await asyncio.gather(*(counter.get() for _ in range(20))))

    m, counter = asyncio.run(first())
    try:
        # No stale reply ("slow", or a get's) answers a call of the new loop.
        assert asyncio.run(second(counter)) == [7] * 20
    finally:
        asyncio.run(m.shutdown())
