"""``toolkit.Manager`` and ``BaseManager``: a ``multiprocessing`` manager server, awaitable proxies.

The server is the stdlib's own (``multiprocessing.managers.Server`` with
``SyncManager``'s registry, or a ``BaseManager`` subclass's), started in a
process of its own or reached at an address: plain ``multiprocessing``
clients talk to it as to any ``SyncManager``. What is new is this side:
creating a shared object is an awaited call, and its proxy's methods are
awaited round trips on a few pooled connections (_connections.py),
without a thread per call (_proxies.py).

    async with toolkit.Manager() as m:          start(): a server process; its
        d = await m.dict()                       address comes back on a pipe
        await d.update(a=1)                      shutdown(): "shutdown" request,
        print(await d.copy())                    join, terminate if need be

The server process's sentinel is watched (no thread): if it dies, every
pending and later call fails with ``ManagerDiedError`` at once. The other
way round, the server ends with the process that started it, even one
killed by SIGKILL: a thread of the server waits on the parent's pid
(_guard.py), then kills the server's own children and exits. An orphaned
server would hold its address for good, and a restart on a fixed port
would fail with "Address already in use".
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import multiprocessing
import multiprocessing.managers
import multiprocessing.util
import os
import signal
from typing import TYPE_CHECKING, Any, ClassVar

from .._core._context import get_context
from .._core._cpython import (
    manager_registry,
    mark_manager_started,
    proxy_exposed,
    proxy_method_to_typeid,
)
from .._core._errors import ClosedError, ManagerDiedError, describe_exit
from .._core._guard import end_with_children, start_forkserver, watch_process
from .._core._threads import to_thread
from .._core._validate import check_positive_int, check_timeout
from .._objects._connection import Connection
from .._objects._process import Process
from ._channel import server_call
from ._connections import ConnectionPool, forget_pool, register_pool
from ._proxies import (
    _SYNC_MANAGER_PROXIES,
    ASYNC_FOR_SYNC,
    AcquirerProxy,
    ArrayProxy,
    AutoProxy,
    BarrierProxy,
    BaseProxy,
    ConditionProxy,
    DictProxy,
    EventProxy,
    ListProxy,
    NamespaceProxy,
    QueueProxy,
    RLockProxy,
    ValueProxy,
    _decref,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from multiprocessing.context import BaseContext
    from types import TracebackType
    from typing import Self

# typeshed lacks most of multiprocessing.managers (AutoProxy, the proxy types, dispatch).
managers: Any = multiprocessing.managers

__all__ = ["BaseManager", "Manager"]

_INITIAL, _STARTED, _SHUTDOWN = "initial", "started", "shut down"


def _serve(
    registry: dict[str, tuple[Any, ...]],
    address: Any,
    authkey: bytes,
    writer: Any,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    parent_pid: int,
) -> None:
    """The server process: the stdlib's Server, its address (or why it failed) sent back.

    It ends with parent_pid, and ends its own children first (a ``Pool``
    typeid's workers, what a registered type started): nothing else stops
    them once the parent is killed, and the server would keep its address
    (a fixed port) for good.
    """
    # A watcher thread only, not guard_child's parent-death signal: under
    # forkserver that SIGKILL arrives as the forkserver dies with the parent,
    # before the watcher has killed our children, who would be orphaned for
    # good. The cost: a call in C holding the GIL delays the exit until it ends.
    watch_process(parent_pid, end_with_children, name="toolkit-manager-guard")
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # as the stdlib (bpo-36368): Ctrl-C is the parent's
    try:
        if initializer is not None:
            initializer(*initargs)
        server = managers.Server(registry, address, authkey, "pickle")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        writer.send(exc)  # (an exit in the initializer is not: the parent sees the exit code)
        writer.close()
        return
    writer.send(server.address)
    writer.close()
    server.serve_forever()


async def _finished(future: asyncio.Future[Any]) -> None:
    """Wait until future is done, whatever cancellations come meanwhile; then raise the last.

    Its own outcome is not raised (the caller had it from a shield, or is
    being cancelled), only marked as seen.
    """
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.wait([future])  # unlike awaiting it, a cancellation leaves it running
        except asyncio.CancelledError as exc:
            cancelled = exc
    if not future.cancelled():
        future.exception()
    if cancelled is not None:
        raise cancelled


def _stop_server(process: Any, address: Any, authkey: bytes, timeout: float) -> None:
    """Stop a server the program forgot to shut down (at exit or collection; blocking)."""
    if process.is_alive():
        with contextlib.suppress(Exception):
            server_call(address, authkey, "shutdown")
        process.join(timeout)
    if process.is_alive():
        process.terminate()
        process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()


class BaseManager:
    """A manager server holding shared objects, reached through awaitable proxies.

    ``register(typeid, callable, ...)`` adds a shared type, as with
    ``multiprocessing.managers.BaseManager``; each registered typeid becomes
    an awaitable method creating one object: ``await manager.typeid(...)``.

    Args:
        address: where the server listens: None (a Unix socket only this
            user can reach; on Windows, a loopback TCP port, still behind
            the authkey), or a ``(host, port)`` pair; port 0 picks one.
            Serve on all interfaces only by saying so (``("0.0.0.0", port)``).
        authkey: the key clients must prove they hold (HMAC challenge);
            default: this process's ``authkey``, inherited by its children.
        context: the start method of the server process (default:
            forkserver on Linux, spawn elsewhere).
        connections: how many connections ordinary calls share (more
            callers wait their turn); a call blocking on the server (a
            queue get, an acquire, a wait) takes one of its own meanwhile.
        shutdown_timeout: seconds to wait for the server to exit at
            shutdown before terminating it, then killing it.

    Raises:
        TypeError: authkey is not bytes; address is neither a path nor a pair.
        ValueError: a network address that is not a (host, port) pair;
            connections < 1; shutdown_timeout <= 0; an unknown start method.
    """

    # typeid -> (callable, exposed, method_to_typeid, stdlib proxytype): what the server serves.
    _registry_: ClassVar[dict[str, tuple[Any, ...]]] = {}
    # typeid -> the awaitable proxy type.
    _proxies_: ClassVar[dict[str, type[BaseProxy]]] = {}
    _sync_class: ClassVar[type[multiprocessing.managers.BaseManager] | None] = None

    def __init__(
        self,
        address: Any = None,
        authkey: bytes | None = None,
        *,
        context: BaseContext | str | None = None,
        connections: int = 4,
        shutdown_timeout: float = 1.0,
    ) -> None:
        if authkey is None:
            authkey = bytes(multiprocessing.current_process().authkey)
        if not isinstance(authkey, bytes):
            raise TypeError(f"authkey must be bytes, not {type(authkey).__name__}")
        if address is not None and not isinstance(address, str | bytes | tuple | list):
            raise TypeError(f"address must be a path or a (host, port) pair, not {address!r}")
        if isinstance(address, tuple | list) and len(address) != 2:
            raise ValueError(f"a network address is a (host, port) pair, not {address!r}")
        self._address = tuple(address) if isinstance(address, list) else address
        self._authkey = authkey
        self._context = get_context(context)
        self._connections = check_positive_int(connections, "connections") or 4
        self._shutdown_timeout = check_timeout(shutdown_timeout, allow_zero=False) or 1.0
        self._state = _INITIAL
        self._process: Process | None = None
        self._pool: ConnectionPool | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._finalizer: multiprocessing.util.Finalize | None = None
        self._sync: multiprocessing.managers.BaseManager | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Each class registers on its own copies, as the stdlib's register() does.
        cls._registry_ = dict(cls._registry_)
        cls._proxies_ = dict(cls._proxies_)
        cls._sync_class = None

    def __repr__(self) -> str:
        where = f" at {self._address!r}" if self._address is not None else ""
        return f"<toolkit.{type(self).__name__} {self._state}{where}>"

    @classmethod
    def register(
        cls,
        typeid: str,
        callable: Callable[..., object] | None = None,
        proxytype: Any = None,
        exposed: Iterable[str] | None = None,
        method_to_typeid: dict[str, str] | None = None,
        create_method: bool = True,
    ) -> None:
        """Register a shared type (the stdlib's signature).

        Args:
            typeid: the type's name; also the name of the creating method.
            callable: makes the object in the server (may be None for a
                typeid only returned by other methods, via method_to_typeid).
            proxytype: a toolkit ``BaseProxy`` subclass, a stdlib proxy type,
                or None: every public method of the object, awaited.
            exposed: the method names proxies may call (default: the proxy
                type's, else the object's public methods).
            method_to_typeid: methods whose result is itself shared (a proxy
                comes back), by the typeid of that result.
            create_method: add ``await manager.typeid(*args, **kwds)``.

        Raises:
            ValueError: typeid is not an identifier.
            TypeError: callable is not callable, or proxytype is not a proxy type.
        """
        if not isinstance(typeid, str) or not typeid.isidentifier():
            raise ValueError(f"typeid must be an identifier, not {typeid!r}")
        if callable is not None and not builtins.callable(callable):
            raise TypeError(f"callable must be callable, not {callable!r}")
        if proxytype is None:
            async_type: type[BaseProxy] = AutoProxy
            sync_type: Any = managers.AutoProxy
        elif isinstance(proxytype, type) and issubclass(proxytype, BaseProxy):
            async_type, sync_type = proxytype, proxytype._sync_type_
            exposed = exposed or proxytype._exposed_
        elif proxytype is managers.AutoProxy or (
            isinstance(proxytype, type) and issubclass(proxytype, managers.BaseProxy)
        ):
            async_type, sync_type = ASYNC_FOR_SYNC.get(proxytype, AutoProxy), proxytype
        else:
            raise TypeError(
                f"proxytype must be a toolkit proxy type, a multiprocessing proxy type or None,"
                f" not {proxytype!r}"
            )
        # As the stdlib: the proxy type's own lists unless given; the server adds
        # method_to_typeid's methods to the exposed ones.
        exposed = tuple(exposed) if exposed else proxy_exposed(sync_type)
        method_to_typeid = method_to_typeid or proxy_method_to_typeid(sync_type)
        cls._registry_[typeid] = (callable, exposed, method_to_typeid, sync_type)
        cls._proxies_[typeid] = async_type
        cls._sync_class = None
        if create_method:

            async def create(self: BaseManager, /, *args: Any, **kwds: Any) -> Any:
                return await self._create(typeid, *args, **kwds)

            create.__name__ = create.__qualname__ = typeid
            create.__doc__ = (
                f"Create a shared {typeid!r} object; return its awaitable proxy.\n\n"
                "Raises:\n"
                "    ClosedError: the manager was not started, or was shut down.\n"
                "    ManagerDiedError: the server process is gone.\n"
                "    multiprocessing.managers.RemoteError: the server could not make it.\n\n"
                "Cancellation:\n"
                "    Once the request went out, the object is made anyway and stays\n"
                "    in the server until the manager shuts down.\n"
            )
            setattr(cls, typeid, create)

    # -- state ----------------------------------------------------------------------------------

    @property
    def address(self) -> Any:
        """Where the server listens (the real port once started, if 0 was asked)."""
        return self._address

    @property
    def pid(self) -> int | None:
        """The server process's id; None for a manager that connected to a server."""
        return None if self._process is None else self._process.pid

    def is_alive(self) -> bool:
        """Tell whether the server is there (its process runs; connections are not broken).

        False before ``start()`` and after ``shutdown()``. It raises nothing.
        """
        if self._state != _STARTED or self._pool is None or self._pool.closed:
            return False
        return self._process is None or self._process.is_alive()

    @property
    def sync(self) -> multiprocessing.managers.BaseManager:
        """A plain ``multiprocessing`` manager of the same server, for synchronous code."""
        pool = self._running()
        if self._sync is None:
            sync_class = type(self)._stdlib_class()
            sync = sync_class(address=pool.address, authkey=pool.authkey)
            mark_manager_started(sync)
            self._sync = sync
        return self._sync

    @classmethod
    def _stdlib_class(cls) -> type[multiprocessing.managers.BaseManager]:
        """The stdlib manager class with the same registry (what ``.sync`` proxies need)."""
        if cls._sync_class is None:
            sync_class: Any = type(
                f"{cls.__name__}Sync", (multiprocessing.managers.BaseManager,), {}
            )
            for typeid, (fn, exposed, method_to_typeid, sync_type) in cls._registry_.items():
                sync_class.register(typeid, fn, sync_type, exposed, method_to_typeid)
            cls._sync_class = sync_class
        return cls._sync_class

    def _running(self) -> ConnectionPool:
        if self._state == _INITIAL:
            raise ClosedError("the manager was not started: await start() or use async with")
        if self._state == _SHUTDOWN or self._pool is None:
            raise ClosedError("the manager was shut down")
        self._pool.check()
        return self._pool

    # -- starting, connecting, shutting down ----------------------------------------------------

    async def start(
        self, initializer: Callable[..., object] | None = None, initargs: Iterable[Any] = ()
    ) -> None:
        """Start the server process and wait until it serves.

        Args:
            initializer: run as initializer(*initargs) in the server process
                before it serves.
            initargs: the initializer's arguments.

        Raises:
            multiprocessing.ProcessError: already started or shut down; or the
                server process exited before serving.
            TypeError: initializer is not callable.
            OSError: the address cannot be served (in use...), raised as the server raised it.
            Exception: what the initializer raised in the server (the server
                then exits), or what pickling the registry or initializer raised.

        Cancellation:
            The server process is stopped (its start, already under way in a
            thread, is seen through first); the manager is then shut down for
            good: start() cannot be called again.
        """
        if self._state != _INITIAL:
            raise multiprocessing.ProcessError(f"the manager was already {self._state}")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        # Here, not in the thread below (a few ms, once): a forkserver started
        # from the main thread dies with this process (_guard.py) instead of
        # staying until its last child, this server included, has gone.
        start_forkserver(self._context)
        self._state = _STARTED
        reader, writer = self._context.Pipe(duplex=False)
        serve_at = self._address
        if serve_at is None and os.name == "nt":
            # The stdlib's default there is a named pipe, a handle, which the
            # toolkit's connections (sockets read without blocking) cannot use.
            serve_at = ("127.0.0.1", 0)
        process = Process(
            target=_serve,
            name=f"{type(self).__name__}-server",
            args=(
                self._registry_,
                serve_at,
                self._authkey,
                writer,
                initializer,
                tuple(initargs),
                os.getpid(),
            ),
            context=self._context,
        )
        self._process = process
        # Shielded: a start cut short by a cancellation still completes in its
        # thread, and the cleanup below must see the process it started.
        starting = asyncio.ensure_future(to_thread(process.start))  # spawn takes milliseconds
        address: Any = None
        try:
            try:
                await asyncio.shield(starting)
            finally:
                await _finished(starting)  # then a cancellation goes on, as it came
                writer.close()  # the child has its copy (or never will)
            async with Connection(reader) as answers:
                try:
                    address = await answers.recv()
                except EOFError:
                    await process.join()
                    raise multiprocessing.ProcessError(
                        f"the manager process exited before serving (exit code {process.exitcode})"
                    ) from None
            if isinstance(address, Exception):  # the server could not start: why
                await process.join()
                raise address
        except BaseException:
            self._state = _SHUTDOWN
            reader.close()
            if process.pid is not None:
                stopping = to_thread(_stop_server, process.sync, address, self._authkey, 0.5)
                await asyncio.shield(stopping)
            self._process = None
            raise
        self._address = address
        self._pool = ConnectionPool(address, self._authkey, self._connections)
        self._pool.label = f"process {process.pid} at {address!r}"
        register_pool(self._pool)
        self._finalizer = multiprocessing.util.Finalize(
            self,
            _stop_server,
            args=(process.sync, address, self._authkey, self._shutdown_timeout),
            exitpriority=0,  # before multiprocessing joins its children at exit
        )
        self._watcher = asyncio.ensure_future(self._watch(process))

    async def _watch(self, process: Process) -> None:
        await process.join()
        if self._pool is not None and self._state == _STARTED:
            # Worded as the connections say it, whichever of the two sees it first.
            self._pool.fail(
                ManagerDiedError(
                    f"the manager {self._pool.label} is gone ({describe_exit(process.exitcode)})"
                )
            )

    @classmethod
    async def connect(
        cls, address: Any, *, authkey: bytes | None = None, connections: int = 4
    ) -> Self:
        """Connect to a manager server already running at address (this one's or the stdlib's).

        Args:
            address: the server's address (``manager.address`` of the one that started it).
            authkey: the server's key (default: this process's ``authkey``).
            connections: how many connections ordinary calls share.

        Raises:
            multiprocessing.AuthenticationError: the server refused the key.
            ConnectionError: nothing serves there (``ConnectionRefusedError``).
            TypeError: authkey is not bytes, or address is neither a path nor a pair.
            ValueError: a network address that is not a (host, port) pair.

        Cancellation:
            Nothing is returned; a connection opened meanwhile is kept by the
            abandoned manager object until it is garbage collected. The server
            is not affected.
        """
        self = cls(address, authkey, connections=connections)
        self._state = _STARTED
        pool = self._pool = ConnectionPool(self._address, self._authkey, self._connections)
        try:
            channel = await pool.checkout()  # connects and authenticates
        except ManagerDiedError as exc:
            self._state = _SHUTDOWN
            raise ConnectionRefusedError(f"no manager serves at {address!r}") from exc.__cause__
        except BaseException:
            self._state = _SHUTDOWN
            raise
        pool.release_channel(channel)
        register_pool(pool)
        return self

    async def shutdown(self) -> None:
        """Stop the server process (its objects go with it); for a connected manager, disconnect.

        Calls still pending fail with ``ClosedError``. Safe to call twice.
        It raises nothing: a server that does not answer is terminated, then
        killed.

        Cancellation:
            Raised where it lands: the rest of the stop is abandoned, and a
            server still running is stopped when the manager is collected, or
            at exit (the finalizer stays until the process is gone).
        """
        if self._state != _STARTED:
            self._state = _SHUTDOWN
            return
        self._state = _SHUTDOWN
        if self._watcher is not None:
            # Cancelled, not awaited: it ends at the loop's next turn, and the
            # state says it must not fail the pool. (Awaiting it with its
            # CancelledError suppressed would swallow a cancellation of shutdown.)
            self._watcher.cancel()
            self._watcher = None
        pool = self._pool
        if pool is not None:
            await pool.aclose(ClosedError("the manager was shut down"))
            forget_pool(pool)
        process = self._process
        if process is not None:
            if process.is_alive():
                with contextlib.suppress(Exception):
                    await to_thread(server_call, self._address, self._authkey, "shutdown")
                await process.join(self._shutdown_timeout)
            if process.is_alive():
                process.terminate()
                await process.join(self._shutdown_timeout)
            if process.is_alive():
                process.kill()
                await process.join()
        if self._finalizer is not None:
            self._finalizer.cancel()
            self._finalizer = None

    async def __aenter__(self) -> Self:
        if self._state == _INITIAL:
            await self.start()
        self._running()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- shared objects ---------------------------------------------------------------------------

    async def _create(self, typeid: str, /, *args: Any, **kwds: Any) -> Any:
        """Create a shared object in the server; return its awaitable proxy."""
        pool = self._running()
        if typeid not in self._registry_:
            raise ValueError(f"{type(self).__name__} has no registered type {typeid!r}")
        # Its own task, shielded: if the caller is cancelled once the request
        # is out, the server makes the object anyway, and the reference it
        # took for us is given back when the answer comes.
        call = asyncio.ensure_future(pool.server_call("create", (typeid, *args), kwds))
        try:
            ident, exposed = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(functools.partial(_give_back_created, pool))
            raise
        token = managers.Token(typeid, pool.address, ident)
        proxytype = self._proxies_[typeid]
        return proxytype._adopt(
            pool,
            token,
            exposed,
            self._registry_[typeid][3],
            self._proxies_,
            lambda: self.sync,
        )

    async def _number_of_objects(self) -> int:
        """How many shared objects the server holds (as the stdlib's, for tests)."""
        return await self._running().server_call("number_of_objects")  # type: ignore[no-any-return]

    async def _debug_info(self) -> str:
        return await self._running().server_call("debug_info")  # type: ignore[no-any-return]


def _give_back_created(pool: ConnectionPool, call: asyncio.Future[Any]) -> None:
    """The reference a create took for a caller that was cancelled meanwhile: given back."""
    if call.cancelled() or call.exception() is not None:
        return  # nothing was made, or nothing can be given back
    ident, _exposed = call.result()
    _decref(pool, ident)


class Manager(BaseManager):
    """A ``SyncManager`` server and awaitable proxies: ``async with toolkit.Manager() as m:``.

    Every object ``multiprocessing.Manager()`` offers, created with an awaited
    call: ``d = await m.dict()``, then ``await d.get(k)``, ``await d.update(...)``.
    The server is a real ``SyncManager`` server: plain ``multiprocessing``
    clients connect to it (``m.address``, the authkey) and share its objects.
    """

    async def dict(self, *args: Any, **kwds: Any) -> DictProxy:
        """A shared ``dict`` (the arguments of ``dict()``).

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("dict", *args, **kwds)  # type: ignore[no-any-return]

    async def list(self, *args: Any) -> ListProxy:
        """A shared ``list`` (the arguments of ``list()``).

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("list", *args)  # type: ignore[no-any-return]

    async def Namespace(self, **kwds: Any) -> NamespaceProxy:
        """A shared namespace, with these attributes.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Namespace", **kwds)  # type: ignore[no-any-return]

    async def Value(self, typecode: Any, value: Any, lock: bool = True) -> ValueProxy:
        """A shared value (the typecode is kept, not enforced, as the stdlib's).

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Value", typecode, value, lock)  # type: ignore[no-any-return]

    async def Array(self, typecode: str, sequence: Any, lock: bool = True) -> ArrayProxy:
        """A shared ``array.array`` of typecode.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.
            TypeError: sequence is neither an int nor iterable (at the call).

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        items = list(sequence) if not isinstance(sequence, int) else [0] * sequence
        return await self._create("Array", typecode, items, lock)  # type: ignore[no-any-return]

    async def Queue(self, maxsize: int = 0) -> QueueProxy:
        """A shared ``queue.Queue``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Queue", maxsize)  # type: ignore[no-any-return]

    async def JoinableQueue(self, maxsize: int = 0) -> QueueProxy:
        """A shared ``queue.Queue`` with ``task_done`` and ``join``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("JoinableQueue", maxsize)  # type: ignore[no-any-return]

    async def Lock(self) -> AcquirerProxy:
        """A shared ``threading.Lock``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Lock")  # type: ignore[no-any-return]

    async def RLock(self) -> RLockProxy:
        """A shared ``threading.RLock``, owned by the task that acquires it.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("RLock")  # type: ignore[no-any-return]

    async def Semaphore(self, value: int = 1) -> AcquirerProxy:
        """A shared ``threading.Semaphore``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Semaphore", value)  # type: ignore[no-any-return]

    async def BoundedSemaphore(self, value: int = 1) -> AcquirerProxy:
        """A shared ``threading.BoundedSemaphore``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("BoundedSemaphore", value)  # type: ignore[no-any-return]

    async def Condition(self, lock: Any = None) -> ConditionProxy:
        """A shared ``threading.Condition`` (over a shared lock, or a new RLock).

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        args = () if lock is None else (lock,)  # a proxy reaches the server as its referent's
        return await self._create("Condition", *args)  # type: ignore[no-any-return]

    async def Event(self) -> EventProxy:
        """A shared ``threading.Event``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Event")  # type: ignore[no-any-return]

    async def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> BarrierProxy:
        """A shared ``threading.Barrier``.

        Raises:
            ClosedError: the manager was not started, or was shut down.
            ManagerDiedError: the server process is gone.
            multiprocessing.managers.RemoteError: the server could not make it
                (arguments its constructor refuses): the server's traceback.

        Cancellation:
            Safe: nothing is left behind. Cancelled once the request went out,
            the server makes the object anyway, and the reference it took for
            this call is given back as soon as its answer arrives.
        """
        return await self._create("Barrier", parties, action, timeout)  # type: ignore[no-any-return]


# The server serves exactly SyncManager's registry (Pool, Iterator, AsyncResult included), so
# stdlib clients find every typeid they know; the creating methods are the ones written above.
Manager._registry_ = dict(manager_registry(managers.SyncManager))
Manager._proxies_ = dict(_SYNC_MANAGER_PROXIES)
Manager._sync_class = managers.SyncManager
