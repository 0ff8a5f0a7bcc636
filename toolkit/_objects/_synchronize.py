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
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from .._core._backend import uses_handles
from .._core._bridge import bridge_for, helper_threads, wait_blocking
from .._core._context import get_context
from .._core._cpython import (
    barrier_action,
    barrier_condition,
    barrier_count,
    barrier_parties,
    barrier_state,
    barrier_timeout,
    condition_lock,
    condition_sleeping_count,
    condition_wait_semaphore,
    condition_woken_count,
    event_condition,
    event_flag,
    semlock_is_zero,
    set_barrier_count,
    set_barrier_state,
)
from .._core._readiness import wait_readable, watcher_for
from .._core._validate import check_timeout

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.context import BaseContext
    from types import TracebackType
    from typing import Self

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"]

T = TypeVar("T")


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
        task hands it to the next local waiter; nobody barges in). A
        negative timeout means 0; with block False it never waits.

        Raises:
            TypeError: timeout is not a number or None.
            ValueError: timeout is NaN.

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
        """Release (as the stdlib; a task of another process may be woken).

        Raises:
            ValueError: a ``BoundedSemaphore`` released more times than it was
                acquired (as the stdlib).
        """
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
        """Release the lock: the next waiting task of this process gets it first.

        Any task (or process) may release it, as the stdlib's.

        Raises:
            ValueError: the lock is not held (as the stdlib).
        """
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
        if self._owner is None or self._count <= 0:
            # Before the count is touched: below zero, the next owner would keep it.
            raise AssertionError("attempt to release recursive lock not owned by this task")
        if self._owner is not asyncio.current_task():
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
        """The current value.

        Raises:
            NotImplementedError: on macOS, which has no ``sem_getvalue`` (as the stdlib).
        """
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

    # Read from the stdlib's attributes once per process (_resolve), never pickled.
    _LOCAL = ("_bell_cond", "_bell_flag", "_flag_is_zero")

    def __init__(self, *, ctx: BaseContext) -> None:
        super().__init__(ctx=ctx)
        self._bell_reader, self._bell_writer = ctx.Pipe(duplex=False)
        self._resolve()

    def _resolve(self) -> None:
        self._bell_cond = event_condition(self)
        self._bell_flag = event_flag(self)
        self._flag_is_zero = semlock_is_zero(self._bell_flag)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in self._LOCAL}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._resolve()

    def doorbell(self) -> int:
        return self._bell_reader.fileno()

    def doorbell_probe(self) -> Any:
        """How a helper thread tells the doorbell rang, where the pipe is a handle (Windows)."""
        return self._bell_reader.poll if uses_handles() else None

    def peek(self) -> bool:
        """Tell whether it is set, without the event's lock (a consistent read of the flag).

        ``is_set`` takes the lock, which ``set`` still holds as a woken waiter
        looks: the waiter would sleep on it. Set and clear change the flag
        under that lock, so one read sees either state, never half of one.
        """
        return not self._flag_is_zero()

    def set(self) -> None:
        with self._bell_cond:
            was_set = self._bell_flag.acquire(False)
            self._bell_flag.release()
            if not was_set:
                # One small message (never empty: an empty one does not
                # poll readable on Windows), so that a handle reads it too.
                self._bell_writer.send_bytes(b"\x01")
            self._bell_cond.notify_all()

    def clear(self) -> None:
        with self._bell_cond:
            if self._bell_flag.acquire(False):
                # It is there: set wrote it under this lock, with the flag.
                self._bell_reader.recv_bytes()


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
        """Whether the event is set. It raises nothing."""
        return bool(self._event.is_set())

    def set(self) -> None:
        """Set the event: every waiter, in every process, wakes. It raises nothing."""
        self._event.set()

    def clear(self) -> None:
        """Clear the event: later waits wait again. It raises nothing."""
        self._event.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the event is set, up to timeout seconds; return whether it is.

        A negative timeout means 0, as in the stdlib.

        Raises:
            TypeError: timeout is not a number or None.
            ValueError: timeout is NaN.

        Cancellation:
            Safe: nothing changes.
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        event = self._event
        if event.peek():
            return True
        doorbell = event.doorbell()
        probe = event.doorbell_probe()
        if timeout is None:  # the common case, flat: a wake-up is a few frames shorter
            watcher = watcher_for(asyncio.get_running_loop())
            while not event.peek():
                future = watcher.waiter(doorbell, broadcast=True, direct=True, probe=probe)
                try:
                    await future
                finally:
                    watcher.release(doorbell)
            return True
        try:
            async with asyncio.timeout(timeout):
                while not event.peek():
                    await wait_readable(doorbell, broadcast=True, direct=True, probe=probe)
        except TimeoutError:
            return event.peek()
        return True


_WAITING, _WOKEN, _GONE = range(3)


class _Sleeper:
    """One coroutine waiting on a Condition."""

    __slots__ = ("future", "state")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.state = _WAITING


class Condition:
    """``multiprocessing.Condition``, awaitable: ``await wait()``, ``await wait_for(pred)``.

    ``notify(n)`` and ``notify_all()`` stay plain calls, as the stdlib's.

    How: each waiting coroutine counts as one sleeper in the stdlib's protocol
    (``_sleeping_count``), so notifiers in any process see it. One helper
    thread per condition takes the wake tokens notifiers hand out, signals
    "woken" at once (a stdlib ``notify`` waits for that, and would otherwise
    wait for a loop it may be blocking), and wakes the first waiting
    coroutine. A waiter that times out or is cancelled settles its count as
    a timed-out stdlib sleeper does, under a lock shared with the helper, so
    the counts stay exact.

    Args:
        lock: a ``toolkit.Lock`` or ``toolkit.RLock`` (default: a new RLock).
    """

    def __init__(
        self, lock: Lock | RLock | None = None, *, context: BaseContext | str | None = None
    ) -> None:
        ctx = get_context(context)
        if lock is not None and not isinstance(lock, Lock | RLock):
            raise TypeError(
                f"lock must be a toolkit.Lock or toolkit.RLock, not {type(lock).__name__}"
            )
        self._lock: Lock | RLock = lock if lock is not None else RLock(context=ctx)
        self._cond: Any = ctx.Condition(self._lock.sync)
        self._setup()

    def _setup(self) -> None:
        # The stdlib condition's counters, read once: every wait uses them.
        self._sleeping = condition_sleeping_count(self._cond)
        self._woken = condition_woken_count(self._cond)
        self._tokens = condition_wait_semaphore(self._cond)
        self._tlock = threading.Lock()  # shared with the helper thread
        self._sleepers: collections.deque[_Sleeper] = collections.deque()
        self._pending = 0
        self._helper_running = False

    def __reduce__(self) -> tuple[Any, tuple[Any, Any]]:
        return type(self)._rebuild, (self._lock, self._cond)

    @classmethod
    def _rebuild(cls, lock: Lock | RLock, plain: Any) -> Self:
        self = cls.__new__(cls)
        self._lock = lock
        self._cond = plain
        self._setup()
        return self

    def __repr__(self) -> str:
        return f"<toolkit.Condition {self._cond!r}>"

    @property
    def sync(self) -> Any:
        """The plain ``multiprocessing.Condition`` underneath."""
        return self._cond

    async def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire the condition's lock, as its ``acquire`` does; return whether it did.

        Raises:
            TypeError: timeout is not a number or None.
            ValueError: timeout is NaN.

        Cancellation:
            Safe: a cancelled acquire holds nothing.
        """
        return await self._lock.acquire(block, timeout)

    def release(self) -> None:
        """Release the condition's lock (one level of an ``RLock``).

        Raises:
            AssertionError: the lock is an ``RLock`` this task does not own.
            ValueError: the lock is a ``Lock`` that is not held.
        """
        self._lock.release()

    async def __aenter__(self) -> Self:
        await self._lock.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()

    def _levels_held(self) -> int:
        me = asyncio.current_task()
        lock = self._lock
        if isinstance(lock, RLock):
            if lock._owner is me:
                return lock._count
        elif lock._holder is me:
            return 1
        raise RuntimeError("the condition's lock is not held by this task")

    async def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (or timeout), take the lock back.

        A negative timeout means 0.

        Returns:
            False if timeout passed without a notify.

        Raises:
            RuntimeError: this task does not hold the condition's lock.
            TypeError: timeout is not a number or None.
            ValueError: timeout is NaN.

        Cancellation:
            The lock is taken back before CancelledError propagates, and the
            condition's counts stay exact for every process.
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        levels = self._levels_held()
        loop = asyncio.get_running_loop()
        sleeper = _Sleeper(loop.create_future())
        with self._tlock:
            self._pending += 1
            self._sleepers.append(sleeper)
            self._sleeping.release()
            start = not self._helper_running
            self._helper_running = True
        if start:
            bridge = bridge_for(loop)
            helper_threads().submit(lambda: self._take_tokens(bridge))
        for _ in range(levels):
            self._lock.release()
        woken = False
        try:
            try:
                async with asyncio.timeout(timeout):
                    await sleeper.future
            except TimeoutError:
                pass
        finally:
            with self._tlock:
                if sleeper.state == _WAITING:  # timed out or cancelled: settle as the stdlib does
                    sleeper.state = _GONE
                    self._pending -= 1
                    self._woken.release()
                else:
                    woken = True
            await self._take_back(levels)
        return woken

    async def _take_back(self, levels: int) -> None:
        cancelled: asyncio.CancelledError | None = None
        for _ in range(levels):
            while True:
                try:
                    await self._lock.acquire()
                    break
                except asyncio.CancelledError as exc:  # the lock first, then the cancellation
                    cancelled = exc
        if cancelled is not None:
            raise cancelled

    def _take_tokens(self, bridge: Any) -> None:
        """Helper thread: take wake tokens for this loop's waiters, while any wait."""
        tokens = self._tokens
        woken = self._woken
        while True:
            with self._tlock:
                if self._pending == 0:
                    self._helper_running = False
                    return
            if not tokens.acquire(True, 0.2):
                continue
            with self._tlock:
                sleeper = None
                while self._sleepers:
                    first = self._sleepers.popleft()
                    if first.state == _WAITING:
                        sleeper = first
                        break
                if sleeper is None:
                    continue  # a surplus token (its sleeper timed out): the notifier drains those
                sleeper.state = _WOKEN
                self._pending -= 1
                woken.release()
            bridge.post(_resolve, sleeper.future)

    async def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until predicate() is true (checked with the lock held); return its last value.

        Returns the falsy value if timeout passes first (no error).

        Raises:
            RuntimeError: this task does not hold the condition's lock.
            TypeError: timeout is not a number or None.
            ValueError: timeout is NaN.
            Exception: whatever predicate raises (the lock is still held).

        Cancellation:
            As wait(): the lock is taken back before ``CancelledError``
            propagates; the predicate is not checked again.
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        result = predicate()
        while not result:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await self.wait(remaining)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to n waiters, in any process (the lock must be held by this task).

        Raises:
            RuntimeError: this task does not hold the condition's lock.
        """
        self._levels_held()
        self._cond.notify(n)

    def notify_all(self) -> None:
        """Wake every waiter, in any process (the lock must be held by this task).

        Raises:
            RuntimeError: this task does not hold the condition's lock.
        """
        self._levels_held()
        self._cond.notify_all()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Barrier:
    """``multiprocessing.Barrier``, awaitable: ``await barrier.wait(timeout=)``.

    Coroutines and plain processes (using ``barrier.sync``) meet at the same
    barrier. The algorithm is the stdlib's (``threading.Barrier``, state in
    shared memory), run over the awaitable ``Condition``; ``reset`` and
    ``abort`` take the barrier's lock, so they are awaited too.

    Args:
        parties: how many must call ``wait`` before all of them go on.
        action: called by one party (the last to arrive) before they go on.
        timeout: the default timeout of ``wait`` (seconds; None: none).
        context: a multiprocessing context or start method name.

    Raises:
        TypeError: parties is not an int, action is not callable, or timeout
            is not a number (at the call).
        ValueError: parties < 1, or timeout is NaN (at the call).
    """

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        context: BaseContext | str | None = None,
    ) -> None:
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"parties must be an int, not {parties!r}")
        if parties < 1:
            raise ValueError("parties must be >= 1")
        if action is not None and not callable(action):
            raise TypeError("action must be callable")
        timeout = check_timeout(timeout, negative_is_zero=True)
        self._barrier: Any = get_context(context).Barrier(parties, action, timeout)
        self._setup()

    def _setup(self) -> None:
        plain = barrier_condition(self._barrier)
        self._cond = Condition._rebuild(RLock._rebuild(condition_lock(plain)), plain)
        # Fixed at creation: read once. The state and the count live in shared
        # memory and change under the condition's lock: read at each use.
        self._parties = barrier_parties(self._barrier)
        self._timeout = barrier_timeout(self._barrier)
        self._action = barrier_action(self._barrier)

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return type(self)._rebuild, (self._barrier,)

    @classmethod
    def _rebuild(cls, plain: Any) -> Self:
        self = cls.__new__(cls)
        self._barrier = plain
        self._setup()
        return self

    def __repr__(self) -> str:
        return f"<toolkit.Barrier parties={self.parties}>"

    @property
    def sync(self) -> Any:
        """The plain ``multiprocessing.Barrier`` underneath."""
        return self._barrier

    @property
    def parties(self) -> int:
        """How many parties must arrive for the barrier to open."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """How many are waiting now (read without the lock: a snapshot)."""
        b = self._barrier
        return barrier_count(b) if barrier_state(b) == 0 else 0

    @property
    def broken(self) -> bool:
        """Whether the barrier is broken (by abort(), a timeout, or a failing action)."""
        return barrier_state(self._barrier) == -2

    async def wait(self, timeout: float | None = None) -> int:
        """Wait until all parties arrived; return this party's index (0 .. parties-1).

        Raises:
            threading.BrokenBarrierError: the barrier is broken, reset, or
                timed out (which breaks it for every party).
            TypeError: timeout is not a number or None.
            ValueError: timeout is NaN.
            Exception: what the action raised, in the party that ran it (the
                barrier is then broken for the others).

        Cancellation:
            The party leaves; the barrier is not broken and its lock is not held.
        """
        b = self._barrier
        if timeout is None:
            timeout = self._timeout
        else:
            timeout = check_timeout(timeout, negative_is_zero=True)
        async with self._cond:
            while barrier_state(b) in (-1, 1):  # draining or resetting: wait until done
                await self._cond.wait()
            if barrier_state(b) < 0:
                raise threading.BrokenBarrierError
            index = barrier_count(b)
            set_barrier_count(b, index + 1)
            try:
                if index + 1 == self._parties:
                    self._release()
                else:
                    await self._wait(timeout)
                return index
            finally:
                count = barrier_count(b) - 1
                set_barrier_count(b, count)
                if count == 0 and barrier_state(b) in (-1, 1):  # the last out: reset
                    set_barrier_state(b, 0)
                    self._cond.notify_all()

    def _release(self) -> None:
        try:
            if self._action:
                self._action()
            set_barrier_state(self._barrier, 1)  # draining
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    async def _wait(self, timeout: float | None) -> None:
        b = self._barrier
        if not await self._cond.wait_for(lambda: barrier_state(b) != 0, timeout):
            self._break()
            raise threading.BrokenBarrierError
        if barrier_state(b) < 0:
            raise threading.BrokenBarrierError

    def _break(self) -> None:
        set_barrier_state(self._barrier, -2)
        self._cond.notify_all()

    async def reset(self) -> None:
        """Return the barrier to its initial state; current waiters get BrokenBarrierError.

        Awaited because it takes the barrier's lock. It raises nothing.

        Cancellation:
            Safe: cancelled while waiting for the barrier's lock, it changed
            nothing; once it has the lock it does not wait.
        """
        b = self._barrier
        async with self._cond:
            if barrier_count(b) > 0:
                if barrier_state(b) in (0, -2):
                    set_barrier_state(b, -1)  # resetting: cleared by the last one out
            else:
                set_barrier_state(b, 0)
            self._cond.notify_all()

    async def abort(self) -> None:
        """Break the barrier: current and future waiters get BrokenBarrierError.

        Awaited because it takes the barrier's lock; ``reset()`` mends it.
        It raises nothing.

        Cancellation:
            Safe: cancelled while waiting for the barrier's lock, it changed
            nothing; once it has the lock it does not wait.
        """
        async with self._cond:
            self._break()
