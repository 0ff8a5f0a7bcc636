"""toolkit/_core/_cpython.py: each accessor of a stdlib private attribute, on the real object.

One test per attribute: a Python that moves one fails the test named after
it, not the whole suite. Each builds the stdlib object and checks that what
the accessor reads (or writes) is what the object itself uses, through the
object's public behaviour where it has one.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import multiprocessing.managers
import multiprocessing.queues
import multiprocessing.synchronize
import operator
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests._waiting import wait_until_blocking
from toolkit._core import _cpython as cpython
from toolkit._core._guard import start_forkserver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.context import BaseContext
    from pathlib import Path

# typeshed lacks most of multiprocessing.managers (Token, the proxy types, State).
managers: Any = multiprocessing.managers

_SEM_VALUE_MAX: int = multiprocessing.synchronize.SEM_VALUE_MAX  # type: ignore[attr-defined]


def _context() -> Any:
    """The toolkit's start method, its forkserver started as the toolkit starts it."""
    context = toolkit.get_context()
    start_forkserver(context)
    return context


def _waiters(condition: Any) -> str:
    """How many sleep on a multiprocessing Condition, as its repr counts them."""
    return repr(condition).rsplit(", ", 1)[1].rstrip(")>")


def _started(target: Callable[..., object], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


# --- queues ------------------------------------------------------------------------------------


@pytest.fixture(params=["Queue", "SimpleQueue", "JoinableQueue"])
def any_queue(request: pytest.FixtureRequest) -> Iterator[Any]:
    queue = getattr(_context(), request.param)()
    yield queue
    queue.close()
    if hasattr(queue, "join_thread"):
        queue.join_thread()


def _get(queue: Any) -> Any:
    if isinstance(queue, multiprocessing.queues.SimpleQueue):
        return queue.get()
    return queue.get(timeout=10)


def test_connection_detach() -> None:
    first, second = multiprocessing.Pipe()
    fd = first.fileno()
    assert cpython.connection_detach(first) == fd
    assert first.closed
    del first  # its finalizer must not close what it gave away
    with socket.socket(fileno=fd) as sock:
        sock.sendall(b"\x00\x00\x00\x02hi")  # multiprocessing's framing
        assert second.recv_bytes() == b"hi"
    second.close()


def test_queue_reader(any_queue: Any) -> None:
    any_queue.put(7)
    reader = cpython.queue_reader(any_queue)
    assert reader.poll(10)
    assert pickle.loads(reader.recv_bytes()) == 7


def test_queue_writer(any_queue: Any) -> None:
    cpython.queue_writer(any_queue).send_bytes(pickle.dumps(7))
    assert not any_queue.empty()  # empty() polls the queue's reader
    if isinstance(any_queue, multiprocessing.queues.SimpleQueue):
        assert any_queue.get() == 7


def test_queue_read_lock(any_queue: Any) -> None:
    any_queue.put(7)
    wait_until_blocking(lambda: not any_queue.empty())
    lock = cpython.queue_read_lock(any_queue)
    got: list[Any] = []
    lock.acquire()
    try:
        getter = _started(lambda: got.append(_get(any_queue)))
        time.sleep(0.05)
        assert got == []  # the item is there, the reader waits for the lock
    finally:
        lock.release()
    getter.join(10)
    assert got == [7]


def test_queue_write_lock(any_queue: Any) -> None:
    lock = cpython.queue_write_lock(any_queue)
    assert lock is not None  # None on Windows only
    lock.acquire()
    try:
        putter = _started(any_queue.put, 7)  # Queue: its feeder thread waits; SimpleQueue: put
        time.sleep(0.05)
        assert any_queue.empty()
    finally:
        lock.release()
    putter.join(10)
    assert _get(any_queue) == 7


@pytest.mark.parametrize("kind", ["Queue", "JoinableQueue"])
def test_queue_slots(kind: str) -> None:
    queue = getattr(_context(), kind)(2)
    slots = cpython.queue_slots(queue)
    assert not queue.full()
    assert slots.acquire(False)
    assert slots.acquire(False)
    assert queue.full()  # full() reads the same semaphore
    slots.release()
    slots.release()
    assert not queue.full()


def test_queue_maxsize() -> None:
    context = _context()
    assert cpython.queue_maxsize(context.Queue(3)) == 3
    assert cpython.queue_maxsize(context.JoinableQueue(5)) == 5
    assert cpython.queue_maxsize(context.Queue()) == _SEM_VALUE_MAX


@pytest.mark.parametrize("kind", ["Queue", "JoinableQueue"])
def test_queue_closed(kind: str) -> None:
    queue = getattr(_context(), kind)()
    assert cpython.queue_closed(queue) is False
    queue.close()
    assert cpython.queue_closed(queue) is True


def test_joinable_queue_condition() -> None:
    queue = _context().JoinableQueue()
    condition = cpython.joinable_queue_condition(queue)
    assert isinstance(condition, multiprocessing.synchronize.Condition)
    queue.put(1)
    joiner = _started(queue.join)
    wait_until_blocking(lambda: _waiters(condition) == "1")  # join() sleeps on it
    assert queue.get(timeout=10) == 1
    queue.task_done()
    joiner.join(10)
    assert not joiner.is_alive()
    queue.close()
    queue.join_thread()


def test_joinable_queue_unfinished() -> None:
    queue = _context().JoinableQueue()
    unfinished = cpython.joinable_queue_unfinished(queue)
    queue.put(1)
    assert unfinished.get_value() == 1
    assert queue.get(timeout=10) == 1
    queue.task_done()
    assert unfinished.get_value() == 0
    queue.close()
    queue.join_thread()


# --- locks, conditions, events, barriers -------------------------------------------------------


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore", "BoundedSemaphore"])
def test_semlock_is_zero(kind: str) -> None:
    lock = getattr(_context(), kind)()
    is_zero = cpython.semlock_is_zero(lock)
    assert is_zero() is False
    lock.acquire()
    assert is_zero() is True
    lock.release()
    assert is_zero() is False


def test_condition_lock() -> None:
    context = _context()
    lock = context.Lock()
    assert cpython.condition_lock(context.Condition(lock)) is lock


def test_condition_sleeping_count() -> None:
    condition = _context().Condition()
    sleeping = cpython.condition_sleeping_count(condition)
    sleeping.release()  # what a waiter does as it goes to sleep
    assert _waiters(condition) == "1"
    sleeping.acquire()
    assert _waiters(condition) == "0"


def test_condition_woken_count() -> None:
    condition = _context().Condition()
    woken = cpython.condition_woken_count(condition)
    woken.release()  # what a waiter does as it wakes
    assert _waiters(condition) == "-1"
    woken.acquire()
    assert _waiters(condition) == "0"


def test_condition_wait_semaphore() -> None:
    condition = _context().Condition()
    woke: list[bool] = []

    def wait() -> None:
        with condition:
            woke.append(condition.wait(10))

    waiter = _started(wait)
    cpython.condition_wait_semaphore(condition).release()  # what notify() hands a waiter
    waiter.join(10)
    assert woke == [True]


def test_event_flag() -> None:
    event = _context().Event()
    flag = cpython.event_flag(event)
    assert not flag.acquire(False)
    event.set()
    assert flag.acquire(False)
    flag.release()
    assert event.is_set()


def test_event_condition() -> None:
    event = _context().Event()
    condition = cpython.event_condition(event)
    assert isinstance(condition, multiprocessing.synchronize.Condition)
    waiter = _started(event.wait, 10)
    wait_until_blocking(lambda: _waiters(condition) == "1")  # wait() sleeps on it
    event.set()
    waiter.join(10)
    assert not waiter.is_alive()


def test_barrier_condition() -> None:
    barrier = _context().Barrier(2, timeout=10)
    condition = cpython.barrier_condition(barrier)
    assert isinstance(condition, multiprocessing.synchronize.Condition)
    waiter = _started(barrier.wait)
    wait_until_blocking(lambda: _waiters(condition) == "1")  # wait() sleeps on it
    barrier.wait()
    waiter.join(10)
    assert not waiter.is_alive()


def test_barrier_parties() -> None:
    barrier = _context().Barrier(3)
    assert cpython.barrier_parties(barrier) == barrier.parties == 3


def test_barrier_timeout() -> None:
    context = _context()
    assert cpython.barrier_timeout(context.Barrier(2, timeout=2.5)) == 2.5
    assert cpython.barrier_timeout(context.Barrier(2)) is None


def test_barrier_action() -> None:
    action = os.getpid
    assert cpython.barrier_action(_context().Barrier(2, action)) is action


def test_barrier_state() -> None:
    barrier = _context().Barrier(2)
    assert cpython.barrier_state(barrier) == 0
    barrier.abort()
    assert cpython.barrier_state(barrier) == -2
    cpython.set_barrier_state(barrier, 0)
    assert not barrier.broken
    cpython.set_barrier_state(barrier, -2)
    assert barrier.broken


def test_barrier_count() -> None:
    barrier = _context().Barrier(3)
    assert cpython.barrier_count(barrier) == 0
    cpython.set_barrier_count(barrier, 2)
    assert barrier.n_waiting == 2
    cpython.set_barrier_count(barrier, 0)
    assert barrier.n_waiting == 0


# --- processes, start methods ------------------------------------------------------------------


def test_process_popen(mp_context: BaseContext) -> None:
    start_forkserver(mp_context)
    process = mp_context.Process(target=time.sleep, args=(0,))  # type: ignore[attr-defined]
    assert cpython.process_popen(process) is None
    process.start()
    try:
        popen = cpython.process_popen(process)
        assert popen.pid == process.pid
        assert popen.sentinel == process.sentinel
    finally:
        process.join(30)
    assert popen.poll() == 0


def test_process_closed() -> None:
    process = _context().Process()
    assert cpython.process_closed(process) is False
    process.close()
    assert cpython.process_closed(process) is True


def test_process_identity() -> None:
    process = _context().Process()
    identity = cpython.process_identity(process)
    assert identity
    assert process.name == f"{type(process).__name__}-{':'.join(map(str, identity))}"


def test_process_args() -> None:
    process = _context().Process(target=sys.exit, args=(0,))
    assert cpython.process_args(process) == (0,)
    cpython.set_process_args(process, (3,))
    process.start()
    process.join(30)
    assert process.exitcode == 3  # the child got the arguments set


class _BootstrappingInChild:
    """Unpickled in a child while spawn/forkserver prepare it: 42 if it is bootstrapping then."""

    def __reduce__(self) -> Any:
        return operator.mul, (42, _AskBootstrapping())


class _AskBootstrapping:
    def __reduce__(self) -> Any:
        return cpython.is_bootstrapping, ()


def test_is_bootstrapping(mp_context: BaseContext) -> None:
    assert cpython.is_bootstrapping() is False
    start_forkserver(mp_context)
    process = mp_context.Process(target=sys.exit, args=(_BootstrappingInChild(),))  # type: ignore[attr-defined]
    process.start()
    process.join(30)
    assert process.exitcode == 42


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.strip()


def test_forkserver_state_preload() -> None:
    # In a fresh interpreter: the forkserver's settings are per process.
    out = _run_python(
        "import multiprocessing\n"
        "from toolkit._core._cpython import forkserver_state\n"
        "multiprocessing.get_context('forkserver').set_forkserver_preload(['json'])\n"
        "print(forkserver_state().preload)\n"
    )
    assert out == "['json']"


def test_forkserver_state_pid() -> None:
    out = _run_python(
        "import os, psutil, multiprocessing.forkserver as forkserver\n"
        "from toolkit._core._cpython import forkserver_state\n"
        "assert forkserver_state().pid is None\n"
        "forkserver.ensure_running()\n"
        "pid = forkserver_state().pid\n"
        "print(psutil.Process(pid).ppid() == os.getpid())\n"
    )
    assert out == "True"


def test_forking_pickler_reducers() -> None:
    reducers = cpython.forking_pickler_reducers()
    assert functools.partial in reducers  # registered by multiprocessing.reduction

    class Local:
        pass

    def reduce(obj: Local) -> Any:
        return Local, ()

    ForkingPickler.register(Local, reduce)
    try:
        assert reducers[Local] is reduce  # the live dict
    finally:
        del reducers[Local]


# --- managers ----------------------------------------------------------------------------------


def test_manager_registry() -> None:
    registry = cpython.manager_registry(managers.SyncManager)
    assert {"dict", "list", "Queue", "Lock"} <= registry.keys()
    assert registry["dict"][3] is managers.DictProxy  # (callable, exposed, method_to_typeid, type)


def test_mark_manager_started(tmp_path: Path) -> None:
    manager = managers.SyncManager(address=str(tmp_path / "nobody.sock"), authkey=b"key")
    with pytest.raises(AssertionError, match="not yet started"):
        manager.dict()
    cpython.mark_manager_started(manager)
    with pytest.raises(FileNotFoundError):  # it now tries the server (there is none)
        manager.dict()


def _address_served_here() -> Any:
    server = cpython.manager_server()
    return None if server is None else server.address


class _ProbeManager(multiprocessing.managers.BaseManager):
    pass


_ProbeManager.register("probe", _address_served_here)


def test_manager_server() -> None:
    assert cpython.manager_server() is None
    with _ProbeManager(ctx=_context()) as manager:
        assert manager.probe()._getvalue() == manager.address  # type: ignore[attr-defined]


def _stdlib_proxy(kind: Any, typeid: str, **kwds: Any) -> Any:
    token = managers.Token(typeid, "/nowhere", "1")
    return kind(token, "pickle", authkey=b"secret", incref=False, **kwds)  # no server needed


def test_proxy_token() -> None:
    proxy = _stdlib_proxy(managers.DictProxy, "dict")
    token = cpython.proxy_token(proxy)
    assert (token.typeid, token.address, token.id) == ("dict", "/nowhere", "1")


def test_proxy_authkey() -> None:
    assert cpython.proxy_authkey(_stdlib_proxy(managers.DictProxy, "dict")) == b"secret"


def test_proxy_exposed() -> None:
    auto = _stdlib_proxy(managers.AutoProxy, "thing", exposed=("poke",))
    assert cpython.proxy_exposed(auto) == ("poke",)
    assert "get" in (cpython.proxy_exposed(managers.DictProxy) or ())
    assert cpython.proxy_exposed(managers.AutoProxy) is None  # a function, not a type


def test_proxy_method_to_typeid() -> None:
    assert cpython.proxy_method_to_typeid(managers.DictProxy) == {"__iter__": "Iterator"}
    assert cpython.proxy_method_to_typeid(managers.ValueProxy) is None


def test_proxy_is_auto() -> None:
    assert cpython.proxy_is_auto(_stdlib_proxy(managers.AutoProxy, "thing", exposed=("poke",)))
    assert not cpython.proxy_is_auto(_stdlib_proxy(managers.DictProxy, "dict"))


# --- executors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [cf.ThreadPoolExecutor, cf.ProcessPoolExecutor])
def test_executor_max_workers(kind: type[cf.Executor]) -> None:
    with kind(3) as executor:  # type: ignore[call-arg]
        assert cpython.executor_max_workers(executor) == 3
    assert cpython.executor_max_workers(object()) is None


def test_executor_initializer(tmp_path: Path) -> None:
    marker = tmp_path / "initialized"
    # os.rmdir would fail (no such directory) and break the pool: the worker must run mkdir.
    context = _context()
    with cf.ProcessPoolExecutor(
        1, mp_context=context, initializer=os.rmdir, initargs=(str(marker),)
    ) as executor:
        assert cpython.executor_initializer(executor) is os.rmdir
        cpython.set_executor_initializer(executor, os.mkdir)
        assert cpython.executor_initializer(executor) is os.mkdir
        assert executor.submit(os.getpid).result(timeout=30) > 0
    assert marker.is_dir()  # the worker started later ran it
    assert cpython.executor_initializer(object(), "none") == "none"


def test_executor_mp_context() -> None:
    context = _context()
    with cf.ProcessPoolExecutor(1, mp_context=context) as executor:
        assert cpython.executor_mp_context(executor) is context
    assert cpython.executor_mp_context(object()) is None


def test_executor_processes() -> None:
    executor = cf.ProcessPoolExecutor(1, mp_context=_context())
    assert cpython.executor_processes(executor) == {}
    pid = executor.submit(os.getpid).result(timeout=30)
    processes = cpython.executor_processes(executor)
    assert processes is not None
    assert list(processes) == [pid]
    assert processes[pid].is_alive()
    executor.shutdown()
    assert cpython.executor_processes(executor) is None


def test_executor_broken() -> None:
    executor = cf.ProcessPoolExecutor(1, mp_context=_context())
    try:
        pid = executor.submit(os.getpid).result(timeout=30)
        assert cpython.executor_broken(executor) is False
        os.kill(pid, signal.SIGKILL)
        wait_until_blocking(lambda: cpython.executor_broken(executor))
        with pytest.raises(cf.process.BrokenProcessPool):
            executor.submit(os.getpid)
    finally:
        executor.shutdown()


def test_executor_shutting_down() -> None:
    executor = cf.ProcessPoolExecutor(1, mp_context=_context())
    assert cpython.executor_shutting_down(executor) is False
    executor.shutdown()
    assert cpython.executor_shutting_down(executor) is True


def test_dask_executor_client() -> None:
    cfexecutor = pytest.importorskip("distributed.cfexecutor")
    client = object()  # the executor only keeps it; no cluster needed
    assert cpython.dask_executor_client(cfexecutor.ClientExecutor(client)) is client
    assert cpython.dask_executor_client(object()) is None


def test_ignore_signal() -> None:
    # Through the C function under signal.signal: the handler really is SIG_IGN after it.
    code = (
        "import os, signal, time\n"
        "from toolkit._core._cpython import ignore_signal\n"
        "signal.signal(signal.SIGUSR1, lambda *a: print('handled', flush=True))\n"
        "ignore_signal(signal.SIGUSR1)\n"
        "assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "time.sleep(0.05)\n"
        "print('alive', flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "alive\n"
