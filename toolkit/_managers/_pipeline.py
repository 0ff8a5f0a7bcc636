"""Many callers on one channel: ``Pipeline`` and ``WaitLine``.

``Pipeline`` sends requests back to back and hands replies out in order;
``WaitLine`` makes one blocking call at a time, in slices, for every waiter
of one object.

See _connections.py for the picture; a reply always reaches its own caller,
and a call done for a caller who left is undone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import TYPE_CHECKING, Any

from .._core._errors import ClosedError
from .._core._readiness import wait_readable
from ._channel import MARGIN, SLICE, Channel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeAlias

    from ._connections import ConnectionPool

    # Undoes what a call did for a caller that left: (a connection, the call's result).
    OnLate: TypeAlias = "Callable[[Channel, Any], Awaitable[None]]"


__all__ = ["Pipeline", "WaitLine"]


class Pipeline:
    """A connection shared by many ordinary calls at once: requests written back to back.

    The server reads a connection's requests one after another and answers
    each in turn, so callers need not wait for each other's round trips:
    replies come back in the order requests went out, and one reader (a task,
    only while replies are awaited) hands each to its caller. A caller alone
    on the pipeline reads its reply itself, first in a brief blocking wait.
    """

    __slots__ = ("_late", "_reader", "_sending", "channel", "waiting")

    def __init__(self, channel: Channel, late: Callable[[OnLate, Any], None]) -> None:
        self.channel = channel
        # In request order: each caller's future, and what undoes its call if it left.
        self.waiting: collections.deque[tuple[asyncio.Future[tuple[str, Any]], OnLate | None]] = (
            collections.deque()
        )
        self._late = late  # runs a compensation (the pool's: on a connection of its own)
        self._reader: asyncio.Task[None] | None = None
        self._sending: asyncio.Future[None] | None = None

    async def call(
        self, data: bytes, *, alone: bool, on_late: OnLate | None = None
    ) -> tuple[str, Any]:
        """Send a framed request, return its reply.

        Cancellation:
            Safe: the reply is read in turn; if the call did something
            (a ``#RETURN``), on_late undoes it, else it is dropped.
        """
        while self._sending is not None:  # a large request is going out: ours goes after it
            await asyncio.shield(self._sending)
        channel = self.channel
        waiting = self.waiting
        rest = channel._send_nowait(data)
        if rest is None and alone and not waiting:
            # The only call in flight: its reply is the next message. No other
            # coroutine runs before the future below exists, so order holds.
            reply = channel._take_one(wait=True)
            if reply is not None:
                return reply
        future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        waiting.append((future, on_late))
        if rest is not None:
            sending = self._sending = asyncio.ensure_future(channel._send_rest(rest))
            sending.add_done_callback(self._sent)
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled after the reader handed the reply over: undo it here.
            if future.done() and not future.cancelled() and on_late is not None:
                kind, result = future.result()
                if kind == "#RETURN":
                    self._late(on_late, result)
            raise

    def _sent(self, sending: asyncio.Future[None]) -> None:
        if self._sending is sending:
            self._sending = None

    async def _read(self) -> None:
        channel, waiting = self.channel, self.waiting
        try:
            while waiting:
                reply = channel._take()
                if reply is None:
                    await wait_readable(channel._fd)
                    continue
                future, on_late = waiting.popleft()
                if not future.done():
                    future.set_result(reply)
                elif on_late is not None and reply[0] == "#RETURN":
                    self._late(on_late, reply[1])  # its caller left: undo what it did
        except BaseException as exc:
            # Broken, closed or cancelled (close(), the loop ending): replies
            # still owed would answer the next callers' requests, so this
            # connection is out of step for good; every caller hears it.
            channel.close()
            error = exc if isinstance(exc, Exception) else ClosedError()
            while waiting:
                future, _ = waiting.popleft()
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise  # a cancellation (or an interrupt) goes on: this task ends with it
        finally:
            self._reader = None

    def close(self) -> None:
        self.channel.close()
        if self._reader is not None:
            self._reader.cancel()


class WaitLine:
    """This process's waiters on one blocking server call, served by one call at a time.

    However many coroutines wait for a queue item, a lock or an event, one
    call waits on the server for all of them (on a connection of its own, in
    slices), and its result goes to the first waiter still there, or to all
    of them (broadcast, an event). A result nobody is left to take is given
    back (``unclaimed``: a queue item put back, a lock released). So blocked
    callers cost a future each, not a connection and a server thread each.

    Slices end before the last waiter's deadline (by MARGIN, more than a
    round trip), so a waiter that times out leaves no call behind on the
    server to take an item for nobody; only a cancelled one can.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        attempt: Callable[[Channel, float], Awaitable[tuple[bool, Any]]],
        unclaimed: Callable[[Channel, Any], Awaitable[None]] | None = None,
        *,
        broadcast: bool = False,
    ) -> None:
        self._pool = pool
        self._attempt = attempt
        self._unclaimed = unclaimed
        self._broadcast = broadcast
        self._futures: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._deadlines: dict[asyncio.Future[Any], float | None] = {}
        self._changed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def waiting(self) -> bool:
        """Tell whether some coroutine of this process waits here."""
        return any(not future.done() for future in self._futures)

    async def wait(self, timeout: float | None) -> Any:
        """Wait for a result, up to timeout seconds.

        Raises:
            TimeoutError: none came in time.

        Cancellation:
            Safe: a result handed over as the waiter left goes to the next
            one, or is given back.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._futures.append(future)
        self._deadlines[future] = None if timeout is None else loop.time() + timeout
        future.add_done_callback(self._forget)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        if self._task is None:
            self._task = self._pool.background(self._serve())
        try:
            async with asyncio.timeout(timeout):
                return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                if not self._broadcast:
                    self._hand_over(future.result())  # ours came just as we left
            else:
                future.cancel()
            raise

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self._deadlines.pop(future, None)

    def _slice(self) -> float | None:
        """How long the next server call may wait; None: only waiters about to time out."""
        deadlines = self._deadlines.values()
        if not deadlines or None in deadlines:
            return SLICE
        remaining = max(d for d in deadlines if d is not None) - asyncio.get_running_loop().time()
        return min(SLICE, remaining - MARGIN) if remaining > MARGIN else None

    def _hand_over(self, result: Any) -> None:
        futures = self._futures
        while futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(result)
                return
        if self._unclaimed is not None:
            self._pool.background(self._give_back(result))

    async def _give_back(self, result: Any) -> None:
        assert self._unclaimed is not None
        async with self._pool.dedicated() as channel:
            await self._unclaimed(channel, result)

    async def _serve(self) -> None:
        try:
            async with self._pool.dedicated() as channel:
                while self.waiting():
                    timeout = self._slice()
                    if timeout is None:
                        await self._until_changed()
                        continue
                    ready, result = await self._attempt(channel, timeout)
                    if not ready:
                        continue
                    if self._broadcast:
                        futures, self._futures = self._futures, collections.deque()
                        for future in futures:
                            if not future.done():
                                future.set_result(result)
                    elif self.waiting():
                        self._hand_over(result)
                    elif self._unclaimed is not None:
                        await self._unclaimed(channel, result)
        except BaseException as exc:
            # Every waiter hears why: the pool failed, or this task was
            # cancelled (the pool closing, the loop ending): ClosedError then.
            error = self._pool.error_for(exc)
            for future in self._futures:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise  # a cancellation (or an interrupt) goes on: this task ends with it
        finally:
            self._futures = collections.deque(f for f in self._futures if not f.done())
            self._task = None
            if self._futures:  # came after the last check: serve them
                self._task = self._pool.background(self._serve())

    async def _until_changed(self) -> None:
        """Let the waiters left time out, unless a new one comes first (a timer, not a poll)."""
        deadlines = [d for d in self._deadlines.values() if d is not None]
        changed = self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(max(deadlines, default=0.0)):
                await changed
