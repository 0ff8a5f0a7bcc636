"""``toolkit.Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Event``: awaitable.

Theory of operation
-------------------
Locks and semaphores are POSIX semaphores: no descriptor to watch (an
``Event`` carries one of its own, see below). Every wait first tries
the non-blocking call; only a wait that would block goes to a helper thread,
and all coroutines of a loop waiting on the same object share one
(_bridge.wait_blocking). The helper only *observes* (acquire then release,
or ``Event.wait``): it never takes the lock for a waiter, so a waiter
cancelled at any moment leaves nothing held. Woken waiters retry the
non-blocking call; one wins, the others wait again.

Waiters of the same process are served first by a local FIFO: when a
coroutine releases a lock, the next local waiter gets its turn without a
thread. A lock is owned by the *task* that acquired it (an ``RLock`` is
re-entrant per task, not per thread: every coroutine runs on the loop's
thread, so the stdlib's per-thread ownership would let two tasks in).

Known wart: while a helper observes, it holds the semaphore for an instant;
another process's non-blocking acquire can fail in that instant.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing.synchronize
import os
from typing import TYPE_CHECKING, Any

from ._bridge import wait_blocking, wait_readable
from ._context import get_context
from ._validate import check_timeout
from ._wire import read_nowait_into

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from types import TracebackType
    from typing import Self

__all__ = ["BoundedSemaphore", "Event", "Lock", "RLock", "Semaphore"]


# The holder of a lock being handed from a releasing task to a waiting one.
_HANDED: Any = object()


class _SemLockBase:
    """What Lock, RLock and the semaphores share: try, then wait (locally or through a helper)."""

    _sem: Any  # the multiprocessing object

    def _init_local(self) -> None:
        self._local_waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return type(self)._rebuild, (self._sem,)

    @classmethod
    def _rebuild(cls, plain: Any) -> Self:
        self = cls.__new__(cls)
        self._sem = plain
        self._init_local()
        self._setup()
        return self

    def _setup(self) -> None:
        pass

    @property
    def sync(self) -> Any:
        """The plain ``multiprocessing`` object underneath."""
        return self._sem

    def _observe(self, timeout: float) -> bool:
        """Helper thread: tell whether the semaphore can be taken, without keeping it."""
        if self._sem.acquire(True, timeout):
            self._sem.release()
            return True
        return False

    def _try_acquire(self) -> bool:
        return bool(self._sem.acquire(False))

    def _held_here(self) -> bool:
        """Tell whether a task of this process holds it (so waiting on the local FIFO is enough)."""
        return False

    async def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire, waiting up to timeout seconds (None: forever); return whether it did.

        Tasks of this process get it in the order they asked (a releasing
        task hands it to the next local waiter; nobody barges in).

        Cancellation:
            Safe: a cancelled acquire holds nothing (a lock handed to it as it
            was cancelled goes on to the next waiter).
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        if self._acquire_now():
            return True
        if not block:
            return False
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._held_here():
                        await self._wait_local()
                        self._taken_over()
                        return True  # handed over by the releasing task
                    await wait_blocking(self._sem, self._observe)
                    if self._try_acquire():
                        return True
        except TimeoutError:
            return False

    def _acquire_now(self) -> bool:
        return not self._has_local_waiters() and self._try_acquire()

    def _has_local_waiters(self) -> bool:
        while self._local_waiters and self._local_waiters[0].done():
            self._local_waiters.popleft()
        return bool(self._local_waiters)

    async def _wait_local(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._local_waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # It was handed to us as we were cancelled: take it, pass it on.
                self._taken_over()
                self.release()
            raise

    def _taken_over(self) -> None:
        """The current task now holds what the releasing task handed over."""

    def _hand_over(self) -> bool:
        """Give the lock, still acquired, to the first local waiter; tell whether one took it."""
        while self._local_waiters:
            future = self._local_waiters.popleft()
            if not future.done():
                future.set_result(None)
                return True
        return False

    def release(self) -> None:
        """Release (as the stdlib; a task of another process may be woken)."""
        self._sem.release()

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<toolkit.{type(self).__name__} {self._sem!r}>"


class Lock(_SemLockBase):
    """``multiprocessing.Lock``, awaitable: ``async with lock``, ``await acquire(timeout=)``."""

    def __init__(self, *, context: BaseContext | str | None = None) -> None:
        self._sem = get_context(context).Lock()
        self._init_local()
        self._setup()

    def _setup(self) -> None:
        self._holder: asyncio.Task[Any] | None = None

    def _try_acquire(self) -> bool:
        if self._sem.acquire(False):
            self._holder = asyncio.current_task()
            return True
        return False

    def _held_here(self) -> bool:
        return self._holder is not None

    def _taken_over(self) -> None:
        self._holder = asyncio.current_task()

    def release(self) -> None:
        # While handed over, it is still held here (by the waiter about to run).
        self._holder = _HANDED
        if not self._hand_over():
            self._holder = None
            self._sem.release()


class RLock(_SemLockBase):
    """``multiprocessing.RLock``, awaitable, re-entrant per *task*."""

    def __init__(self, *, context: BaseContext | str | None = None) -> None:
        self._sem = get_context(context).RLock()
        self._init_local()
        self._setup()

    def _setup(self) -> None:
        self._owner: asyncio.Task[Any] | None = None
        self._count = 0

    def _try_acquire(self) -> bool:
        me = asyncio.current_task()
        if self._owner is not None and self._owner is not me:
            return False  # another task of this process: the thread owns it, the task does not
        if not self._sem.acquire(False):
            return False
        self._owner = me
        self._count += 1
        return True

    def _held_here(self) -> bool:
        return self._owner is not None

    def _acquire_now(self) -> bool:
        if self._owner is not None and self._owner is asyncio.current_task():
            return self._try_acquire()  # re-entry: never queue behind others
        return super()._acquire_now()

    def _taken_over(self) -> None:
        # The semaphore stays held by the loop's thread: only the task changes.
        self._owner = asyncio.current_task()
        self._count = 1

    def release(self) -> None:
        """Release one level.

        Raises:
            AssertionError: the calling task does not own it (as the stdlib for threads).
        """
        if self._owner is not asyncio.current_task() and self._owner is not None:
            raise AssertionError("attempt to release recursive lock not owned by this task")
        self._count -= 1
        if self._count:
            self._sem.release()
            return
        self._owner = _HANDED
        if not self._hand_over():
            self._owner = None
            self._sem.release()


class Semaphore(_SemLockBase):
    """``multiprocessing.Semaphore``, awaitable."""

    def __init__(self, value: int = 1, *, context: BaseContext | str | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"value must be an int, not {value!r}")
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._sem = self._make(get_context(context), value)
        self._init_local()

    @staticmethod
    def _make(context: BaseContext, value: int) -> Any:
        return context.Semaphore(value)

    def get_value(self) -> int:
        """The current value (NotImplementedError on macOS, as the stdlib)."""
        return int(self._sem.get_value())


class BoundedSemaphore(Semaphore):
    """``multiprocessing.BoundedSemaphore``, awaitable: releasing past its start value fails."""

    @staticmethod
    def _make(context: BaseContext, value: int) -> Any:
        return context.BoundedSemaphore(value)


class _DoorbellEvent(multiprocessing.synchronize.Event):
    """A ``multiprocessing.Event`` whose pipe is readable exactly while it is set.

    ``set`` writes one byte on the transition to set, ``clear`` reads it
    back, both under the event's own lock: at most one byte is ever in the
    pipe, so neither blocks. Waiters never read it, they watch it: readiness
    (no thread) wakes every waiting coroutine of every process at once.
    Plain synchronous code (``.sync`` in a child) rings it too: it is this
    class, with the stdlib's API.
    """

    def __init__(self, *, ctx: BaseContext) -> None:
        super().__init__(ctx=ctx)
        self._bell_reader, self._bell_writer = ctx.Pipe(duplex=False)

    def doorbell(self) -> int:
        return self._bell_reader.fileno()

    def peek(self) -> bool:
        """Tell whether it is set, without the event's lock (a consistent read of the flag).

        ``is_set`` takes the lock, which ``set`` still holds as a woken waiter
        looks: the waiter would sleep on it. Set and clear change the flag
        under that lock, so one read sees either state, never half of one.
        """
        return not self._flag._semlock._is_zero()  # type: ignore[attr-defined]

    def set(self) -> None:
        with self._cond:  # type: ignore[attr-defined]
            was_set = self._flag.acquire(False)  # type: ignore[attr-defined]
            self._flag.release()  # type: ignore[attr-defined]
            if not was_set:
                os.write(self._bell_writer.fileno(), b"\x01")
            self._cond.notify_all()  # type: ignore[attr-defined]

    def clear(self) -> None:
        with self._cond:  # type: ignore[attr-defined]
            if self._flag.acquire(False):  # type: ignore[attr-defined]
                read_nowait_into(self._bell_reader.fileno(), memoryview(bytearray(1)))


class Event:
    """``multiprocessing.Event``, awaitable: ``await event.wait(timeout=)``.

    ``set``, ``clear`` and ``is_set`` do not wait, so they stay plain calls.
    Waiting costs no thread: the event carries a doorbell pipe, readable
    exactly while it is set, that the loop watches.
    """

    def __init__(self, *, context: BaseContext | str | None = None) -> None:
        self._event = _DoorbellEvent(ctx=get_context(context))

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return type(self)._rebuild, (self._event,)

    @classmethod
    def _rebuild(cls, plain: Any) -> Self:
        self = cls.__new__(cls)
        self._event = plain
        return self

    def __repr__(self) -> str:
        return f"<toolkit.Event {'set' if self.is_set() else 'unset'}>"

    @property
    def sync(self) -> multiprocessing.synchronize.Event:
        """The ``multiprocessing.Event`` underneath (which also rings the doorbell)."""
        return self._event

    def is_set(self) -> bool:
        return bool(self._event.is_set())

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the event is set, up to timeout seconds; return whether it is.

        Cancellation:
            Safe: nothing changes.
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        event = self._event
        if event.peek():
            return True
        doorbell = event.doorbell()
        try:
            async with asyncio.timeout(timeout):
                while not event.peek():
                    await wait_readable(doorbell, broadcast=True)
        except TimeoutError:
            return event.peek()
        return True
