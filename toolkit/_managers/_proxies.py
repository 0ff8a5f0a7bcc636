"""Awaitable proxies of the objects a manager holds: the stdlib proxy types' methods, awaited.

Each proxy is a reference to one object in the manager's server. Its
methods are the stdlib proxy type's, under the same names, each a round trip
awaited on readiness (_connections.py). What Python cannot await
(``d[k]``, ``len(l)``, ``ns.x``) has a named form: ``getitem``, ``setitem``,
``delitem``, ``contains``, ``len``, ``getattr``, ``setattr``, ``delattr``.
``copy()`` returns a plain local copy of the referent.

Lifetime: the server counts references. A proxy made by this process's
manager holds the reference the server took when it created the object, and
gives it back (``decref``, from a helper thread) when it is garbage
collected; a proxy rebuilt in another process holds the stdlib proxy it was
rebuilt from (``.sync``), which counts itself, as the stdlib does.

Blocking methods try the non-blocking call first; if it would block, the
coroutine joins its process's wait line for that object (a queue's
``get``, a lock's ``acquire``, an event's ``wait``): one server-side call,
in slices, serves every waiter (_pipeline.WaitLine). What the
server did for a caller that left is undone: a queue item goes to the next
getter or back into the queue, a lock acquired for nobody is handed on or
released. An RLock belongs to a server thread, that is to a connection: a
task holding one keeps its connection until its last release, and
``Condition.wait``/``notify`` go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.managers
import os
import queue
import weakref
from multiprocessing.context import get_spawning_popen
from typing import TYPE_CHECKING, Any, ClassVar

from .._core._bridge import helper_threads
from .._core._cpython import (
    manager_server,
    proxy_authkey,
    proxy_exposed,
    proxy_is_auto,
    proxy_token,
)
from .._core._errors import QueueEmpty, QueueFull
from .._core._validate import check_timeout
from ._channel import SLICE, Channel, server_call
from ._connections import ConnectionPool, pool_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType
    from typing import Self

# typeshed lacks most of multiprocessing.managers (AutoProxy, the proxy types, dispatch).
managers: Any = multiprocessing.managers

__all__ = [
    "AcquirerProxy",
    "ArrayProxy",
    "AutoProxy",
    "BarrierProxy",
    "BaseProxy",
    "ConditionProxy",
    "DictProxy",
    "EventProxy",
    "ListProxy",
    "NamespaceProxy",
    "QueueProxy",
    "RLockProxy",
    "ValueProxy",
]


def _decref(pool: ConnectionPool, ident: str) -> None:
    """Give a reference back to the server (a finalizer: any thread, never the loop)."""
    if pool.closed or pool.pid != os.getpid():
        return  # shut down or dead, or a fork child's copy: not ours to give back

    def job() -> None:
        with contextlib.suppress(Exception):  # the server may be gone: nothing to give back
            server_call(pool.address, pool.authkey, "decref", (ident,))

    with contextlib.suppress(RuntimeError):  # the interpreter is shutting down
        helper_threads().submit(job)


class BaseProxy:
    """A reference to an object held by a manager, with awaitable calls.

    ``sync`` is the plain ``multiprocessing`` proxy of the same object, for
    synchronous code; the proxy itself pickles into a child process, which
    can await its calls from a loop of its own.
    """

    # What register() uses when this class is passed as proxytype.
    _exposed_: ClassVar[tuple[str, ...] | None] = None
    _sync_type_: ClassVar[Any] = managers.AutoProxy

    _pool_: ConnectionPool
    _token: Any  # multiprocessing.managers.Token
    _exposed: tuple[str, ...]
    _sync_type: Any
    _sync: Any
    _types: Mapping[str, type[BaseProxy]]
    _sync_manager: Callable[[], Any] | None

    @classmethod
    def _adopt(
        cls,
        pool: ConnectionPool,
        token: Any,
        exposed: tuple[str, ...],
        sync_type: Any,
        types: Mapping[str, type[BaseProxy]],
        sync_manager: Callable[[], Any] | None,
    ) -> Self:
        """Wrap a reference the server just counted for us (a create, or a #PROXY reply)."""
        self = cls.__new__(cls)
        self._pool_ = pool
        self._token = token
        self._exposed = tuple(exposed)
        self._sync_type = sync_type
        self._sync = None
        self._types = types
        self._sync_manager = sync_manager
        weakref.finalize(self, _decref, pool, token.id).atexit = False
        self._setup()
        return self

    @classmethod
    def _from_sync(cls, sync: Any, sync_type: Any, pool: ConnectionPool | None = None) -> Self:
        """Wrap a stdlib proxy (rebuilt from a pickle): it holds the reference."""
        self = cls.__new__(cls)
        token = proxy_token(sync)
        self._pool_ = pool or pool_for(token.address, proxy_authkey(sync))
        self._token = token
        self._exposed = proxy_exposed(sync) or ()
        self._sync_type = sync_type
        self._sync = sync
        self._types = _SYNC_MANAGER_PROXIES
        self._sync_manager = None
        self._setup()
        return self

    def _setup(self) -> None:
        """Per-type state (subclasses)."""

    @property
    def _pool(self) -> ConnectionPool:
        """This process's connections to the server (a fork child opens its own)."""
        pool = self._pool_
        if pool.pid != os.getpid():
            pool = self._pool_ = pool_for(pool.address, pool.authkey)
        return pool

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        kwds: dict[str, Any] = {}
        if get_spawning_popen() is not None:
            # As the stdlib: a child being started gets the key with its arguments.
            kwds["authkey"] = self._pool.authkey
        if self._sync_type is managers.AutoProxy:
            kwds["exposed"] = self._exposed
        return _rebuild, (type(self), self._sync_type, self._token, kwds)

    def __repr__(self) -> str:
        return f"<toolkit.{type(self).__name__} of {self._token.typeid!r} id {self._token.id}>"

    @property
    def sync(self) -> Any:
        """The plain ``multiprocessing`` proxy of the same object (made on first use).

        Making it counts a reference on the server: a blocking round trip,
        as every call of a stdlib proxy is.
        """
        if self._sync is None:
            manager = self._sync_manager() if self._sync_manager is not None else None
            self._sync = self._sync_type(
                self._token,
                "pickle",
                manager=manager,
                authkey=self._pool.authkey,
                exposed=self._exposed,
            )
        return self._sync

    async def _callmethod(
        self,
        methodname: str,
        args: tuple[Any, ...] = (),
        kwds: dict[str, Any] | None = None,
        *,
        on_late: Callable[[Channel, Any], Awaitable[None]] | None = None,
    ) -> Any:
        """Call a method of the referent and return a copy of the result (as the stdlib).

        Args:
            on_late: undoes the call if it succeeded after its caller left.

        Cancellation:
            The call may still happen on the server; its reply is read and
            dropped (or undone by on_late), never handed to another caller.
        """
        kind, result = await self._pool.call(
            self._token.id, methodname, args, kwds, on_late=on_late
        )
        return self._result(kind, result)

    async def _request(
        self,
        channel: Channel,
        methodname: str,
        args: tuple[Any, ...] = (),
        *,
        on_late: Callable[[Channel, Any], Any] | None = None,
    ) -> Any:
        kind, result = await self._pool.request(
            channel, self._token.id, methodname, args, on_late=on_late
        )
        return self._result(kind, result)

    def _result(self, kind: str, result: Any) -> Any:
        if kind == "#RETURN":
            if isinstance(result, managers.BaseProxy):
                return self._awaitable(result)  # a shared object held by this one
            return result
        if kind == "#PROXY":
            exposed, token = result
            token.address = self._token.address
            proxytype = self._types.get(token.typeid, AutoProxy)
            return proxytype._adopt(
                self._pool, token, exposed, proxytype._sync_type_, self._types, self._sync_manager
            )
        raise managers.convert_to_error(kind, result)

    def _awaitable(self, sync: Any) -> BaseProxy:
        """The awaitable proxy of a stdlib proxy that came back from the server."""
        proxytype = self._types.get(proxy_token(sync).typeid, AutoProxy)
        sync_type = managers.AutoProxy if proxy_is_auto(sync) else type(sync)
        return proxytype._from_sync(sync, sync_type, self._pool)

    async def copy(self) -> Any:
        """Return a plain local copy of the referent (``#GETVALUE``: it must pickle).

        Raises:
            ClosedError: the manager was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not pickle
                the referent (the server's traceback).

        Cancellation:
            Safe: the copy is made by the server anyway, its reply read and
            dropped; the proxy stays usable.
        """
        return self._plain(await self._callmethod("#GETVALUE"))

    def _plain(self, value: Any) -> Any:
        return value


def _rebuild(cls: type[BaseProxy], sync_type: Any, token: Any, kwds: dict[str, Any]) -> Any:
    sync = managers.RebuildProxy(sync_type, token, "pickle", kwds)
    server = manager_server()
    if server is not None and server.address == token.address:
        # Inside the server itself (a proxy passed to a method, stored in a dict):
        # the stdlib's proxy, as the stdlib makes it, for the server's own code
        # and for plain clients that read it back.
        return sync
    return cls._from_sync(sync, sync_type)


class AutoProxy(BaseProxy):
    """The proxy of a registered type without a proxy type of its own.

    Every exposed method of the referent is an awaitable method of the proxy.
    """

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._exposed:
            raise AttributeError(
                f"{type(self).__name__} of {self._token.typeid!r} has no exposed method {name!r}"
            )

        async def method(*args: Any, **kwds: Any) -> Any:
            return await self._callmethod(name, args, kwds)

        method.__name__ = method.__qualname__ = name
        return method

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._exposed})


# --- containers ----------------------------------------------------------------------------------


class _Sequence(BaseProxy):
    async def getitem(self, key: Any) -> Any:
        """``proxy[key]``, awaited."""
        return await self._callmethod("__getitem__", (key,))

    async def setitem(self, key: Any, value: Any) -> None:
        """``proxy[key] = value``, awaited."""
        await self._callmethod("__setitem__", (key, value))

    async def len(self) -> int:
        """``len(proxy)``, awaited."""
        return await self._callmethod("__len__")  # type: ignore[no-any-return]


class DictProxy(_Sequence):
    """A shared ``dict``: the stdlib ``DictProxy`` methods, awaited."""

    _exposed_ = proxy_exposed(managers.DictProxy)
    _sync_type_ = managers.DictProxy

    async def delitem(self, key: Any) -> None:
        """``del proxy[key]``, awaited."""
        await self._callmethod("__delitem__", (key,))

    async def contains(self, key: Any) -> bool:
        """``key in proxy``, awaited."""
        return await self._callmethod("__contains__", (key,))  # type: ignore[no-any-return]

    async def get(self, key: Any, default: Any = None) -> Any:
        return await self._callmethod("get", (key, default))

    async def setdefault(self, key: Any, default: Any = None) -> Any:
        return await self._callmethod("setdefault", (key, default))

    async def pop(self, key: Any, *default: Any) -> Any:
        return await self._callmethod("pop", (key, *default))

    async def popitem(self) -> tuple[Any, Any]:
        return await self._callmethod("popitem")  # type: ignore[no-any-return]

    async def update(self, *args: Any, **kwds: Any) -> None:
        await self._callmethod("update", args, kwds)

    async def clear(self) -> None:
        await self._callmethod("clear")

    async def keys(self) -> list[Any]:
        """The keys, as a list (the stdlib proxy's ``keys()`` is a list too)."""
        return await self._callmethod("keys")  # type: ignore[no-any-return]

    async def values(self) -> list[Any]:
        return await self._callmethod("values")  # type: ignore[no-any-return]

    async def items(self) -> list[tuple[Any, Any]]:
        return await self._callmethod("items")  # type: ignore[no-any-return]

    async def copy(self) -> dict[Any, Any]:
        """Return a plain ``dict`` copy."""
        return await self._callmethod("copy")  # type: ignore[no-any-return]


class ListProxy(_Sequence):
    """A shared ``list``: the stdlib ``ListProxy`` methods, awaited."""

    _exposed_ = proxy_exposed(managers.ListProxy)
    _sync_type_ = managers.ListProxy

    async def delitem(self, key: Any) -> None:
        """``del proxy[key]``, awaited."""
        await self._callmethod("__delitem__", (key,))

    async def contains(self, value: Any) -> bool:
        """``value in proxy``, awaited."""
        return await self._callmethod("__contains__", (value,))  # type: ignore[no-any-return]

    async def append(self, value: Any) -> None:
        await self._callmethod("append", (value,))

    async def extend(self, values: Any) -> None:
        await self._callmethod("extend", (list(values),))

    async def insert(self, index: int, value: Any) -> None:
        await self._callmethod("insert", (index, value))

    async def pop(self, index: int = -1) -> Any:
        return await self._callmethod("pop", (index,))

    async def remove(self, value: Any) -> None:
        await self._callmethod("remove", (value,))

    async def index(self, value: Any, *start_stop: int) -> int:
        return await self._callmethod("index", (value, *start_stop))  # type: ignore[no-any-return]

    async def count(self, value: Any) -> int:
        return await self._callmethod("count", (value,))  # type: ignore[no-any-return]

    async def reverse(self) -> None:
        await self._callmethod("reverse")

    async def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        await self._callmethod("sort", (), {"key": key, "reverse": reverse})

    async def copy(self) -> list[Any]:
        """Return a plain ``list`` copy."""
        return await self._callmethod("#GETVALUE")  # type: ignore[no-any-return]


class ArrayProxy(_Sequence):
    """A shared ``array``: ``getitem``, ``setitem``, ``len``, awaited."""

    _exposed_ = proxy_exposed(managers.ArrayProxy)
    _sync_type_ = managers.ArrayProxy

    async def copy(self) -> list[Any]:
        """Return the items, as a plain list."""
        return list(await self._callmethod("#GETVALUE"))


class NamespaceProxy(BaseProxy):
    """A shared ``Namespace``: attributes read and written with awaited calls."""

    _exposed_ = proxy_exposed(managers.NamespaceProxy)
    _sync_type_ = managers.NamespaceProxy

    async def getattr(self, name: str) -> Any:
        """``ns.name``, awaited."""
        return await self._callmethod("__getattribute__", (name,))

    async def setattr(self, name: str, value: Any) -> None:
        """``ns.name = value``, awaited."""
        await self._callmethod("__setattr__", (name, value))

    async def delattr(self, name: str) -> None:
        """``del ns.name``, awaited."""
        await self._callmethod("__delattr__", (name,))

    async def copy(self) -> dict[str, Any]:
        """Return the namespace's public attributes, as a dict."""
        namespace = await self._callmethod("#GETVALUE")
        return {k: v for k, v in vars(namespace).items() if not k.startswith("_")}


class ValueProxy(BaseProxy):
    """A shared ``Value``: ``await get()``, ``await set(v)``."""

    _exposed_ = proxy_exposed(managers.ValueProxy)
    _sync_type_ = managers.ValueProxy

    async def get(self) -> Any:
        return await self._callmethod("get")

    async def set(self, value: Any) -> None:
        await self._callmethod("set", (value,))

    async def copy(self) -> Any:
        """Return the value."""
        return await self.get()


# --- queues --------------------------------------------------------------------------------------


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


def _slice(deadline: float | None) -> float:
    if deadline is None:
        return SLICE
    return max(0.0, min(SLICE, deadline - asyncio.get_running_loop().time()))


def _expired(deadline: float | None) -> bool:
    return deadline is not None and asyncio.get_running_loop().time() >= deadline


class QueueProxy(BaseProxy):
    """A shared ``queue.Queue`` (``Queue``, ``JoinableQueue``): its methods, awaited."""

    _exposed_ = (
        "empty",
        "full",
        "get",
        "get_nowait",
        "join",
        "put",
        "put_nowait",
        "qsize",
        "task_done",
    )

    async def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item, waiting up to timeout seconds (None: forever).

        Every getter of this process waiting on this queue shares one
        server-side get (one connection), whatever their number.

        Raises:
            QueueEmpty: no item came in time (also ``queue.Empty``).

        Cancellation:
            Safe: an item the server gave for a getter that left goes to the
            next getter of this process, or back into the queue (at its end).
        """
        timeout = check_timeout(timeout)
        line = self._pool.line((self._token.id, "get"), self._get_slice, self._put_back)
        if not block or timeout == 0 or not line.waiting():
            try:
                return await self._callmethod("get", (False,), on_late=self._put_back)
            except queue.Empty:
                if not block or timeout == 0:
                    raise QueueEmpty from None
        try:
            return await line.wait(timeout)
        except TimeoutError:
            raise QueueEmpty from None

    async def _get_slice(self, channel: Channel, timeout: float) -> tuple[bool, Any]:
        try:
            return True, await self._request(
                channel, "get", (True, timeout), on_late=self._put_back
            )
        except queue.Empty:
            return False, None

    async def _put_back(self, channel: Channel, item: Any) -> None:
        await self._pool.request(channel, self._token.id, "put", (item,))

    async def get_nowait(self) -> Any:
        """Remove and return an item if one is there now.

        Raises:
            QueueEmpty: there is none.
        """
        try:
            return await self._callmethod("get", (False,), on_late=self._put_back)
        except queue.Empty:
            raise QueueEmpty from None

    async def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put an item, waiting up to timeout seconds for room in a bounded queue.

        Raises:
            QueueFull: no room came in time (also ``queue.Full``).

        Cancellation:
            A put cancelled while it waited for room may still have put the item.
        """
        timeout = check_timeout(timeout)
        try:
            await self._callmethod("put", (item, False))
            return
        except queue.Full:
            if not block or timeout == 0:
                raise QueueFull from None
        deadline = _deadline(timeout)
        async with self._pool.dedicated() as channel:
            while True:
                try:
                    await self._request(channel, "put", (item, True, _slice(deadline)))
                    return
                except queue.Full:
                    if _expired(deadline):
                        raise QueueFull from None

    async def put_nowait(self, item: Any) -> None:
        """Put an item if there is room now.

        Raises:
            QueueFull: there is none.
        """
        await self.put(item, block=False)

    async def qsize(self) -> int:
        return await self._callmethod("qsize")  # type: ignore[no-any-return]

    async def empty(self) -> bool:
        return await self._callmethod("empty")  # type: ignore[no-any-return]

    async def full(self) -> bool:
        return await self._callmethod("full")  # type: ignore[no-any-return]

    async def task_done(self) -> None:
        await self._callmethod("task_done")

    async def join(self) -> None:
        """Wait until every item put was marked done.

        Cancellation:
            Safe; the server's wait goes on until the queue is done or the
            manager closes, on a connection of its own.
        """
        async with self._pool.dedicated() as channel:
            await self._request(channel, "join")


# --- synchronization -----------------------------------------------------------------------------


class AcquirerProxy(BaseProxy):
    """A shared ``Lock``, ``Semaphore`` or ``BoundedSemaphore``: ``async with``, ``acquire()``."""

    _exposed_ = proxy_exposed(managers.AcquirerProxy)
    _sync_type_ = managers.AcquirerProxy

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire, waiting up to timeout seconds (None: forever); tell whether it was.

        Every waiter of this process shares one server-side acquire (one
        connection); what it acquires goes to the first waiter still there.

        Cancellation:
            Safe: an acquisition the server made for a waiter that left goes
            to the next waiter of this process, or is released.
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        line = self._pool.line((self._token.id, "acquire"), self._acquire_slice, self._unlock)
        if not blocking or timeout == 0 or not line.waiting():
            if await self._callmethod("acquire", (False,), on_late=self._unlock):
                return True
            if not blocking or timeout == 0:
                return False
        try:
            return bool(await line.wait(timeout))
        except TimeoutError:
            return False

    async def _acquire_slice(self, channel: Channel, timeout: float) -> tuple[bool, Any]:
        acquired = await self._request(channel, "acquire", (True, timeout), on_late=self._unlock)
        return bool(acquired), True

    async def _acquire_on(self, channel: Channel, blocking: bool, timeout: float | None) -> bool:
        if not blocking or timeout == 0:
            return bool(await self._request(channel, "acquire", (False,), on_late=self._unlock))
        deadline = _deadline(timeout)
        while True:
            if await self._request(
                channel, "acquire", (True, _slice(deadline)), on_late=self._unlock
            ):
                return True
            if _expired(deadline):
                return False

    async def _unlock(self, channel: Channel, acquired: Any) -> None:
        if acquired:
            await self._pool.request(channel, self._token.id, "release")

    async def release(self) -> None:
        """Release (any task may release a Lock or a Semaphore, as with threads)."""
        await self._callmethod("release")

    async def __aenter__(self) -> bool:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


class RLockProxy(AcquirerProxy):
    """A shared ``RLock``: owned by the task that acquired it, re-entrant for that task.

    On the server an RLock belongs to the thread serving one connection, so
    the owning task keeps that connection until its last release.
    """

    _held: dict[asyncio.Task[Any], list[Any]]

    def _setup(self) -> None:
        self._held = {}

    def _holding(self) -> list[Any] | None:
        task = asyncio.current_task()
        return None if task is None else self._held.get(task)

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        timeout = check_timeout(timeout, negative_is_zero=True)
        held = self._holding()
        if held is not None:  # re-entrant: the server thread owns it, this returns at once
            acquired = await self._acquire_on(held[0], blocking, timeout)
            held[1] += acquired
            return acquired
        channel = await self._pool.checkout()
        try:
            acquired = await self._acquire_on(channel, blocking, timeout)
        except BaseException:
            self._pool.release_channel(channel)
            raise
        if not acquired:
            self._pool.release_channel(channel)
            return False
        task = asyncio.current_task()
        assert task is not None
        self._held[task] = [channel, 1]
        return True

    async def release(self) -> None:
        """Release once; the last release gives the task's connection back.

        Raises:
            RuntimeError: this task does not hold it (as threading's RLock).
        """
        held = self._holding()
        if held is None:
            raise RuntimeError("cannot release un-acquired lock")
        channel = held[0]
        held[1] -= 1
        if held[1] == 0:
            task = asyncio.current_task()
            del self._held[task]  # type: ignore[arg-type]
        try:
            await self._request(channel, "release")
        finally:
            if held[1] == 0:
                self._pool.release_channel(channel)

    def _owned_channel(self, what: str) -> Channel:
        held = self._holding()
        if held is None:
            raise RuntimeError(f"cannot {what} un-acquired lock")
        return held[0]  # type: ignore[no-any-return]


class ConditionProxy(RLockProxy):
    """A shared ``Condition``: ``async with``, ``await wait()``, ``await notify()``."""

    _exposed_ = proxy_exposed(managers.ConditionProxy)
    _sync_type_ = managers.ConditionProxy

    async def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (or timeout), take the lock back.

        Raises:
            RuntimeError: this task does not hold the lock.

        Cancellation:
            The lock is held again when the cancellation is raised (as with
            asyncio.Condition): ``async with`` releases it.
        """
        timeout = check_timeout(timeout)
        channel = self._owned_channel("wait on")
        deadline = _deadline(timeout)
        while True:
            if await self._request(channel, "wait", (_slice(deadline),)):
                return True
            if _expired(deadline):
                return False

    async def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until predicate() is true (checked with the lock held); return its last value."""
        timeout = check_timeout(timeout)
        deadline = _deadline(timeout)
        result = predicate()
        while not result:
            if _expired(deadline):
                break
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            await self.wait(None if remaining is None else max(0.0, remaining))
            result = predicate()
        return result

    async def notify(self, n: int = 1) -> None:
        await self._request(self._owned_channel("notify on"), "notify", (n,))

    async def notify_all(self) -> None:
        await self._request(self._owned_channel("notify on"), "notify_all")


class EventProxy(BaseProxy):
    """A shared ``Event``: ``await wait(timeout=)``, ``await set()``..."""

    _exposed_ = proxy_exposed(managers.EventProxy)
    _sync_type_ = managers.EventProxy

    async def is_set(self) -> bool:
        return await self._callmethod("is_set")  # type: ignore[no-any-return]

    async def set(self) -> None:
        await self._callmethod("set")

    async def clear(self) -> None:
        await self._callmethod("clear")

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the event is set or timeout seconds pass; tell whether it is set.

        Every waiter of this process shares one server-side wait (one connection).

        Cancellation:
            Safe: nothing is taken.
        """
        timeout = check_timeout(timeout)
        if await self._callmethod("is_set"):
            return True
        if timeout == 0:
            return False
        line = self._pool.line((self._token.id, "wait"), self._wait_slice, broadcast=True)
        try:
            return bool(await line.wait(timeout))
        except TimeoutError:
            return False

    async def _wait_slice(self, channel: Channel, timeout: float) -> tuple[bool, Any]:
        is_set = bool(await self._request(channel, "wait", (timeout,)))
        return is_set, is_set


class BarrierProxy(BaseProxy):
    """A shared ``Barrier``: ``await wait(timeout=)``; its properties are awaited methods."""

    _exposed_ = proxy_exposed(managers.BarrierProxy)
    _sync_type_ = managers.BarrierProxy

    async def wait(self, timeout: float | None = None) -> int:
        """Wait until every party is there; return this party's index.

        Raises:
            threading.BrokenBarrierError: the barrier was broken or reset, or timed out.

        Cancellation:
            The server-side wait goes on (a barrier cannot be left without
            breaking it); its connection comes back when the barrier trips.
        """
        timeout = check_timeout(timeout)
        async with self._pool.dedicated() as channel:
            return await self._request(channel, "wait", (timeout,))  # type: ignore[no-any-return]

    async def abort(self) -> None:
        await self._callmethod("abort")

    async def reset(self) -> None:
        await self._callmethod("reset")

    async def parties(self) -> int:
        return await self._callmethod("__getattribute__", ("parties",))  # type: ignore[no-any-return]

    async def n_waiting(self) -> int:
        return await self._callmethod("__getattribute__", ("n_waiting",))  # type: ignore[no-any-return]

    async def broken(self) -> bool:
        return await self._callmethod("__getattribute__", ("broken",))  # type: ignore[no-any-return]


# The awaitable proxy type of each typeid SyncManager registers (toolkit.Manager serves them all).
_SYNC_MANAGER_PROXIES: dict[str, type[BaseProxy]] = {
    "dict": DictProxy,
    "list": ListProxy,
    "Namespace": NamespaceProxy,
    "Value": ValueProxy,
    "Array": ArrayProxy,
    "Queue": QueueProxy,
    "JoinableQueue": QueueProxy,
    "Lock": AcquirerProxy,
    "RLock": RLockProxy,
    "Semaphore": AcquirerProxy,
    "BoundedSemaphore": AcquirerProxy,
    "Condition": ConditionProxy,
    "Event": EventProxy,
    "Barrier": BarrierProxy,
}

# The awaitable counterpart of a stdlib proxy type passed to register().
ASYNC_FOR_SYNC: dict[Any, type[BaseProxy]] = {
    managers.DictProxy: DictProxy,
    managers.ListProxy: ListProxy,
    managers.NamespaceProxy: NamespaceProxy,
    managers.ValueProxy: ValueProxy,
    managers.ArrayProxy: ArrayProxy,
    managers.AcquirerProxy: AcquirerProxy,
    managers.ConditionProxy: ConditionProxy,
    managers.EventProxy: EventProxy,
    managers.BarrierProxy: BarrierProxy,
}
