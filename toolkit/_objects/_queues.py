"""``toolkit.Queue``, ``JoinableQueue``, ``SimpleQueue``: ``multiprocessing`` queues, awaitable.

Theory of operation
-------------------
A ``multiprocessing.Queue`` is a pipe (its reader end shared by every
consuming process, guarded by a process-shared read lock), a semaphore
counting free slots (bounded queues), and a feeder thread per producing
process that writes what ``put`` buffered.

``get``: try ``get`` without blocking first; only when nothing is there,
wait on the reader's readiness (no thread: _bridge.py). The read lock is
taken without blocking; if another process holds it (it is reading), the
wait goes to a shared helper thread. A message is read on the loop when it
is wholly there, else the rest is read by a helper thread that then
releases the lock (_wire.py). Cancellation never drops an item: nothing is
consumed until the read lock is held and a message is there; a message
whose read was under way when its getter was cancelled is kept for this
process's next ``get`` (and counted by ``qsize``/``empty``).

``put`` on a full bounded queue waits for a free slot through a shared
helper thread (one per queue, whatever the number of waiting putters).
``JoinableQueue.join`` waits the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing.queues
import multiprocessing.reduction
import multiprocessing.synchronize
import pickle
import queue as stdlib_queue
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._core._bridge import wait_blocking
from .._core._context import get_context
from .._core._cpython import (
    joinable_queue_condition,
    joinable_queue_unfinished,
    queue_closed,
    queue_maxsize,
    queue_read_lock,
    queue_reader,
    queue_slots,
    queue_write_lock,
    queue_writer,
    semlock_is_zero,
)
from .._core._errors import ClosedError, QueueEmpty, QueueFull
from .._core._readiness import wait_readable
from .._core._threads import to_thread
from .._core._validate import check_timeout
from .._core._wire import MessageReader, Partial

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from multiprocessing.context import BaseContext
    from typing import Self

T = TypeVar("T")

__all__ = ["JoinableQueue", "Queue", "SimpleQueue"]


# What multiprocessing stores as the bound of an unbounded queue.
_SEM_VALUE_MAX: int = multiprocessing.synchronize.SEM_VALUE_MAX  # type: ignore[attr-defined]

# A helper reading where pipes are handles waits this long at a time, then
# looks whether anyone still waits.
_SLICE = 0.25

_STUCK = (
    "items are waiting, but another process holds the queue's read lock"
    " (did a process die while reading from the queue?)"
)

_EMPTY = object()  # nothing there
_LOCKED = object()  # another reader holds the read lock


class _Reader:
    """The get side shared by Queue and SimpleQueue: one message at a time, cancel-safe."""

    def __init__(self, reader: Any, rlock: Any, after_read: Any) -> None:
        self._reader = reader  # the multiprocessing Connection (read end)
        self._fd: int = reader.fileno()
        self._wire = MessageReader(reader)
        self._rlock = rlock  # process-shared Lock serializing readers
        self._after_read = after_read  # Queue: free a slot (sem.release); SimpleQueue: None
        self._kept: collections.deque[bytes | bytearray] = collections.deque()
        # Where pipes are handles (_wire.MessageReader): getters waiting in
        # line, and whether a helper thread is reading for them.
        self._getters: collections.deque[asyncio.Future[bytes | bytearray]] = collections.deque()
        self._reading = False
        self._stuck = False  # the helper could not take the read lock while items were there
        self._pending: asyncio.Future[bytes | bytearray] | None = None  # finished off the loop

    @property
    def kept(self) -> int:
        return len(self._kept) + (self._pending is not None)

    def read_nowait(self) -> bytes | bytearray:
        """Take one message if one is there now (may block briefly on a large one).

        Raises:
            QueueEmpty: nothing there, or another reader holds the read lock.
        """
        if self._kept:
            return self._kept.popleft()
        if not self._rlock.acquire(False):
            raise QueueEmpty
        try:
            if not self._reader.poll():
                raise QueueEmpty
            data: bytes = self._reader.recv_bytes()
        finally:
            self._rlock.release()
        if self._after_read is not None:
            self._after_read()
        return data

    def attempt(self) -> bytes | bytearray | object:
        """Take a message that is wholly there, without blocking: the fast path of get.

        Returns:
            The message, or _EMPTY, or _LOCKED. A message that is only partly
            there is handed to a helper thread (self._pending) and _EMPTY returned.
        """
        if self._kept:
            return self._kept.popleft()
        if self._pending is not None or self._wire.handles:
            return _EMPTY  # handles: every read goes to the helper (read())
        if not self._rlock.acquire(False):
            return _LOCKED
        try:
            message = self._wire.try_read()
        except BaseException:
            self._rlock.release()
            raise
        if message is None:
            self._rlock.release()
            return _EMPTY
        if isinstance(message, Partial):
            # Keep the read lock: the helper thread finishes, then releases it.
            self._pending = asyncio.ensure_future(to_thread(self._finish, message))
            return _EMPTY
        self._rlock.release()
        if self._after_read is not None:
            self._after_read()
        return message

    def _finish(self, partial: Partial) -> bytes | bytearray:
        try:
            data = self._wire.finish(partial)
        finally:
            self._rlock.release()
        if self._after_read is not None:
            self._after_read()
        return data

    async def read(self, deadline: float | None) -> bytes | bytearray:
        """Take one message, waiting for one until the loop time deadline.

        Raises:
            QueueEmpty: the deadline passed.
        """
        if self._wire.handles:
            return await self._read_through_helper(deadline)
        while True:
            outcome = self.attempt()
            if outcome is _LOCKED and self._wire.ready():
                # Data is there but another reader holds the lock: wait for the
                # lock (a shared helper thread), not for readability, which
                # would fire at once, again and again.
                await self._wait_until(
                    deadline, wait_blocking(self._rlock, self._lock_free), _STUCK
                )
                continue
            if outcome is not _EMPTY and outcome is not _LOCKED:
                return outcome  # type: ignore[return-value]
            if self._pending is not None:
                pending, self._pending = self._pending, None
                try:
                    return await asyncio.shield(pending)
                except asyncio.CancelledError:
                    self._keep_when_done(pending)  # read on: the next get takes it
                    raise
            await self._wait_until(deadline, wait_readable(self._fd, probe=self._wire.probe))

    # -- where pipes are handles ---------------------------------------------------------------
    #
    # Nothing tells whether a whole message is there, so every read is made
    # by a helper thread with the connection's own calls (as the stdlib's
    # get, under the read lock). One helper per queue reads for all the
    # getters in line, several messages per trip when several are there (never
    # more than getters wait: the rest stay in the pipe for other processes),
    # and each message goes to the first getter still waiting; one whose
    # getter left meanwhile is kept for this process's next get.

    async def _read_through_helper(self, deadline: float | None) -> bytes | bytearray:
        if self._kept:
            return self._kept.popleft()
        future: asyncio.Future[bytes | bytearray] = asyncio.get_running_loop().create_future()
        self._getters.append(future)
        self._pump()
        try:
            if deadline is None:
                return await future
            async with asyncio.timeout_at(deadline):
                return await future
        except (asyncio.CancelledError, TimeoutError) as exc:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._kept.appendleft(future.result())  # handed over as we left: not lost
            future.cancel()
            if isinstance(exc, TimeoutError):
                raise QueueEmpty(_STUCK) if self._stuck else QueueEmpty from None
            raise

    def _pump(self) -> None:
        while self._getters and self._getters[0].done():
            self._getters.popleft()
        if self._reading or not self._getters:
            return
        self._reading = True
        want = sum(not future.done() for future in self._getters)
        trip = asyncio.ensure_future(to_thread(self._read_batch, want))
        trip.add_done_callback(self._delivered)

    def _read_batch(self, want: int) -> list[bytes]:
        """Up to want messages, waiting a slice for the first (helper thread)."""
        got: list[bytes] = []
        if not self._rlock.acquire(True, _SLICE):
            self._stuck = self._reader.poll()  # items there, the lock held: said at the timeout
            return got
        self._stuck = False
        try:
            ready = self._reader.poll(_SLICE)
            while ready:
                got.append(self._reader.recv_bytes())
                if self._after_read is not None:
                    self._after_read()
                ready = len(got) < want and self._reader.poll()
        finally:
            self._rlock.release()
        return got

    def _delivered(self, trip: asyncio.Future[list[bytes]]) -> None:
        self._reading = False
        error = None if trip.cancelled() else trip.exception()
        messages = collections.deque([] if error is not None or trip.cancelled() else trip.result())
        while messages:
            while self._getters and self._getters[0].done():
                self._getters.popleft()
            if not self._getters:
                self._kept.extend(messages)
                break
            self._getters.popleft().set_result(messages.popleft())
        if error is not None:
            # A closed or broken pipe: every getter sees it (as the stdlib's get would).
            while self._getters:
                future = self._getters.popleft()
                if not future.done():
                    future.set_exception(error)
            return
        self._pump()

    def _keep_when_done(self, pending: asyncio.Future[bytes | bytearray]) -> None:
        def _keep(future: asyncio.Future[bytes | bytearray]) -> None:
            if not future.cancelled() and future.exception() is None:
                self._kept.append(future.result())

        pending.add_done_callback(_keep)

    def _lock_free(self, timeout: float) -> bool:
        if self._rlock.acquire(True, timeout):
            self._rlock.release()
            return True
        return False

    @staticmethod
    async def _wait_until(deadline: float | None, wait: Any, why: str = "") -> None:
        if deadline is None:
            await wait
            return
        try:
            async with asyncio.timeout_at(deadline):
                await wait
        except TimeoutError:
            raise QueueEmpty(why) if why else QueueEmpty from None


class SimpleQueue(Generic[T]):
    """``multiprocessing.SimpleQueue``, awaitable: ``await get()``, ``await put(item)``.

    ``sync`` is the plain queue, for synchronous code and children without
    a loop; the object itself also pickles into a child (as a ``Process``
    argument).
    """

    def __init__(self, *, context: BaseContext | str | None = None) -> None:
        self._wrap(get_context(context).SimpleQueue())

    def _wrap(self, plain: multiprocessing.queues.SimpleQueue[Any]) -> None:
        self._queue = plain
        self._get = _Reader(queue_reader(plain), queue_read_lock(plain), None)
        self._writer = queue_writer(plain)
        self._wlock = queue_write_lock(plain)

    @classmethod
    def _rebuild(cls, plain: multiprocessing.queues.SimpleQueue[Any]) -> Self:
        self = cls.__new__(cls)
        self._wrap(plain)
        return self

    def __reduce__(self) -> tuple[Any, tuple[multiprocessing.queues.SimpleQueue[Any]]]:
        return type(self)._rebuild, (self._queue,)

    @property
    def sync(self) -> multiprocessing.queues.SimpleQueue[Any]:
        """The plain ``multiprocessing`` queue underneath."""
        return self._queue

    def empty(self) -> bool:
        """Whether the queue is empty now (another process may put or take meanwhile).

        Raises:
            OSError: the queue was closed in this process ("handle is closed").
        """
        return not self._get.kept and self._queue.empty()

    def close(self) -> None:
        """Close both ends of the queue in this process (as the stdlib's).

        Later calls in this process raise ``OSError``; other processes are
        not affected. Closing twice does nothing. It raises nothing.
        """
        self._queue.close()

    def get_nowait(self) -> T:
        """Remove and return an item if one is there now.

        Raises:
            QueueEmpty: there is none (or another process is reading).
            OSError: the queue was closed in this process.
            Exception: what unpickling the item raises (the item is consumed).
        """
        return pickle.loads(self._get.read_nowait())  # type: ignore[no-any-return]

    async def get(self) -> T:
        """Remove and return an item, waiting until one is there.

        Raises:
            OSError: the queue was closed in this process.
            Exception: what unpickling the item raises (the item is consumed).

        Cancellation:
            Safe: nothing is taken from the queue for a getter that was cancelled.
        """
        data = self._get.attempt()
        if data is _EMPTY or data is _LOCKED:
            data = await self._get.read(None)
        return pickle.loads(data)  # type: ignore[arg-type,no-any-return]

    async def put(self, item: T) -> None:
        """Put an item in the queue (pickled here; written whole, from a helper thread).

        Raises:
            pickle.PicklingError: item cannot be pickled (nothing is put); pickle
                raises ``TypeError`` or ``AttributeError`` for some objects too.
            OSError: the queue was closed in this process.

        Cancellation:
            A put cancelled before its helper thread started writing puts
            nothing; one already writing goes on, and the item goes in whole.
            The cancelled caller cannot tell which: either way no item is torn
            and the queue stays usable.
        """
        data = bytes(multiprocessing.reduction.ForkingPickler.dumps(item))
        await to_thread(self._put_bytes, data)

    def _put_bytes(self, data: bytes) -> None:
        if self._wlock is None:
            self._writer.send_bytes(data)
        else:
            with self._wlock:
                self._writer.send_bytes(data)

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            yield await self.get()


class Queue(Generic[T]):
    """``multiprocessing.Queue``, awaitable.

    ``await get(timeout=)``, ``await put(item, timeout=)``, ``get_nowait``,
    ``put_nowait``, ``qsize``, ``empty``, ``full``, ``close``, ``async for``.
    ``sync`` is the plain queue.

    Args:
        maxsize: bound on the number of items (0: unbounded).
        context: a multiprocessing context or start method name.
    """

    def __init__(self, maxsize: int = 0, *, context: BaseContext | str | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {maxsize!r}")
        self._wrap(self._make(maxsize, get_context(context)))

    @staticmethod
    def _make(maxsize: int, context: BaseContext) -> multiprocessing.queues.Queue[Any]:
        return context.Queue(maxsize)

    def _wrap(self, plain: multiprocessing.queues.Queue[Any]) -> None:
        self._queue = plain
        # Read once: the stdlib sets these at creation (and unpickling) only.
        self._slots = queue_slots(plain)
        self._maxsize = queue_maxsize(plain)
        self._get = _Reader(queue_reader(plain), queue_read_lock(plain), self._slots.release)

    @classmethod
    def _rebuild(cls, plain: multiprocessing.queues.Queue[Any]) -> Self:
        self = cls.__new__(cls)
        self._wrap(plain)
        return self

    def __reduce__(self) -> tuple[Any, tuple[multiprocessing.queues.Queue[Any]]]:
        return type(self)._rebuild, (self._queue,)

    def __repr__(self) -> str:
        return f"<toolkit.{type(self).__name__} maxsize={self.maxsize}>"

    @property
    def sync(self) -> multiprocessing.queues.Queue[Any]:
        """The plain ``multiprocessing`` queue underneath."""
        return self._queue

    @property
    def maxsize(self) -> int:
        """The bound given at creation; 0 for unbounded (as queue.Queue)."""
        return 0 if self._maxsize == _SEM_VALUE_MAX else self._maxsize

    def _check_open(self) -> None:
        if queue_closed(self._queue):
            raise ClosedError(f"{self!r} is closed")

    def qsize(self) -> int:
        """Approximate number of items (an item a cancelled getter left is counted).

        Raises:
            NotImplementedError: on macOS, which has no ``sem_getvalue`` (as the stdlib).
        """
        return self._queue.qsize() + self._get.kept

    def empty(self) -> bool:
        """Whether the queue is empty now (another process may put or take meanwhile).

        It raises nothing, even after close().
        """
        return not self._get.kept and self._queue.empty()

    def full(self) -> bool:
        """Whether a bounded queue has no free slot now (never, for an unbounded one).

        It raises nothing.
        """
        return self._queue.full()

    def close(self) -> None:
        """No more puts or gets from this process; the feeder flushes what is buffered.

        Later ``get``/``put`` calls in this process raise ``ClosedError``;
        other processes are not affected. Closing twice does nothing.
        It raises nothing.
        """
        self._queue.close()

    def join_thread(self) -> None:
        """Block until the feeder thread has written every buffered item (after close()).

        A blocking call, as the stdlib's: from the loop, use
        ``await toolkit.to_thread(q.join_thread)`` (leaving ``async with q``
        does that).

        Raises:
            AssertionError: the queue was not closed first (as the stdlib).
        """
        self._queue.join_thread()

    def cancel_join_thread(self) -> None:
        """Do not wait for the feeder thread at this process's exit (buffered items may be lost).

        It raises nothing.
        """
        self._queue.cancel_join_thread()

    # -- get ----------------------------------------------------------------------------------

    def get_nowait(self) -> T:
        """Remove and return an item if one is there now.

        Raises:
            QueueEmpty: there is none (or another process is reading).
            ClosedError: the queue was closed in this process.
            Exception: what unpickling the item raises (the item is consumed).
        """
        self._check_open()
        return pickle.loads(self._get.read_nowait())  # type: ignore[no-any-return]

    async def get(self, timeout: float | None = None) -> T:
        """Remove and return an item, waiting up to timeout seconds (None: forever).

        Raises:
            QueueEmpty: no item came within timeout (its message says so when
                items wait but another process holds the read lock).
            ClosedError: the queue was closed in this process.
            TypeError: timeout is not a number or None.
            ValueError: timeout is negative or NaN.
            Exception: what unpickling the item raises (the item is consumed).

        Cancellation:
            Safe: nothing is taken from the queue for a getter that was
            cancelled; an item whose read was under way is kept for this
            process's next ``get``.
        """
        self._check_open()
        if timeout is not None:
            timeout = check_timeout(timeout)
        data = self._get.attempt()  # the fast path: an item is there, nothing to await
        if data is _EMPTY or data is _LOCKED:
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            data = await self._get.read(deadline)
        return pickle.loads(data)  # type: ignore[arg-type,no-any-return]

    async def __aiter__(self) -> AsyncIterator[T]:
        """Yield items as they come, forever (break out of the loop to stop)."""
        while True:
            yield await self.get()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close, then wait (off the loop) for the feeder thread to flush what was put."""
        self.close()
        await to_thread(self._queue.join_thread)

    # -- put ----------------------------------------------------------------------------------

    def put_nowait(self, item: T) -> None:
        """Put an item if there is room now.

        As the stdlib's, the item is pickled by the feeder thread, not here:
        one that cannot be pickled is dropped, its error printed to stderr.

        Raises:
            QueueFull: the queue is full.
            ClosedError: the queue was closed in this process.
        """
        self._check_open()
        try:
            self._queue.put(item, block=False)
        except stdlib_queue.Full:
            raise QueueFull from None

    async def put(self, item: T, timeout: float | None = None) -> None:
        """Put an item, waiting up to timeout seconds for room (None: forever).

        As the stdlib's, the item is pickled by the feeder thread, not here:
        one that cannot be pickled is dropped, its error printed to stderr.

        Raises:
            QueueFull: no room came within timeout.
            ClosedError: the queue was closed in this process.
            TypeError: timeout is not a number or None.
            ValueError: timeout is negative or NaN.

        Cancellation:
            Safe: a cancelled put did not put its item.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            with contextlib.suppress(QueueFull):
                self.put_nowait(item)
                return
            try:
                async with asyncio.timeout_at(deadline):
                    await wait_blocking(self._slots, self._slot_free)
            except TimeoutError:
                raise QueueFull from None

    def _slot_free(self, timeout: float) -> bool:
        if self._slots.acquire(True, timeout):
            self._slots.release()
            return True
        return False


class JoinableQueue(Queue[T]):
    """``multiprocessing.JoinableQueue``, awaitable: also ``task_done()`` and ``await join()``."""

    @staticmethod
    def _make(maxsize: int, context: BaseContext) -> multiprocessing.queues.Queue[Any]:
        return context.JoinableQueue(maxsize)

    def _wrap(self, plain: multiprocessing.queues.Queue[Any]) -> None:
        super()._wrap(plain)
        self._all_done_cond = joinable_queue_condition(plain)
        self._none_unfinished = semlock_is_zero(joinable_queue_unfinished(plain))

    def task_done(self) -> None:
        """Say that an item taken with get is fully processed.

        Raises:
            ValueError: called more times than there were items.
        """
        self._queue.task_done()  # type: ignore[attr-defined]

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put has been marked done; False if timeout passed first.

        Unlike the stdlib's it returns a bool, and a timeout is not an error.

        Raises:
            TypeError: timeout is not a number or None.
            ValueError: timeout is negative or NaN.

        Cancellation:
            Safe: nothing changes.
        """
        timeout = check_timeout(timeout)
        try:
            async with asyncio.timeout(timeout):
                while not self._all_done(0):
                    await wait_blocking(self._all_done_cond, self._all_done)
        except TimeoutError:
            return False
        return True

    def _all_done(self, timeout: float) -> bool:
        cond = self._all_done_cond
        with cond:
            if self._none_unfinished():
                return True
            if timeout:
                cond.wait(timeout)
            return self._none_unfinished()
