"""The one door from other threads into the event loop.

Theory of operation
-------------------
Worker threads, executor callbacks and helper waits all finish on some
thread other than the loop's. ``loop.call_soon_threadsafe`` per completion
costs a self-pipe write and a loop wake-up each time; under a burst of
thousands of completions that is most of the cost of a ``to_thread`` call.
Each loop gets one ``LoopBridge``; threads append completions to its inbox
and only the first one into an empty inbox wakes the loop:

    worker thread ──post(cb, args)──▶ inbox (deque) ──▶ one call_soon_threadsafe
    worker thread ──post(cb, args)──▶   │                 per batch, not per item
                                        ▼
                              loop thread: _drain() runs every callback queued

The ``_scheduled`` flag is cleared *before* the drain pops anything, so an item
appended after the clear either is popped by this drain or schedules the
next one; an item is never stranded. (deque.append/popleft are atomic.)

This module is the only caller of ``call_soon_threadsafe`` in the toolkit;
keeping loop access here keeps another loop (trio, a Proactor loop) possible.
"""

from __future__ import annotations

import collections
import threading
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    from collections.abc import Callable

T = TypeVar("T")

__all__ = ["LoopBridge", "bridge_for", "chain_future"]


class LoopBridge:
    """A per-loop inbox that other threads post callbacks to, woken once per batch."""

    __slots__ = ("__weakref__", "_inbox", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._inbox: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._scheduled = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def post(self, callback: Callable[..., object], *args: Any) -> None:
        """Run callback(*args) on the loop thread soon; safe from any thread.

        Callbacks run in the order they were posted. A callback posted after
        the loop closed is dropped: nobody is left to receive it.
        """
        self._inbox.append((callback, args))
        if self._scheduled:
            return
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed; nothing can be delivered any more
            self._inbox.clear()
            self._scheduled = False

    def _drain(self) -> None:
        self._scheduled = False  # first: see the module docstring
        inbox = self._inbox
        while inbox:
            callback, args = inbox.popleft()
            try:
                callback(*args)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                self._loop.call_exception_handler(
                    {"message": f"toolkit: exception in callback {callback!r}", "exception": exc}
                )


_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBridge] = (
    weakref.WeakKeyDictionary()
)
_bridges_lock = threading.Lock()


def bridge_for(loop: asyncio.AbstractEventLoop) -> LoopBridge:
    """Return the loop's bridge, creating it on first use."""
    bridge = _bridges.get(loop)
    if bridge is None:
        with _bridges_lock:
            bridge = _bridges.get(loop)
            if bridge is None:
                bridge = _bridges[loop] = LoopBridge(loop)
    return bridge


def _copy_state(source: concurrent.futures.Future[T], dest: asyncio.Future[T]) -> None:
    """Copy a finished concurrent future into an asyncio one (loop thread)."""
    if dest.done():  # cancelled by its awaiter meanwhile: nothing to deliver
        return
    if source.cancelled():
        dest.cancel()
        return
    exc = source.exception()
    if exc is not None:
        dest.set_exception(exc)
    else:
        dest.set_result(source.result())


def chain_future(
    source: concurrent.futures.Future[T], loop: asyncio.AbstractEventLoop
) -> asyncio.Future[T]:
    """Return an asyncio future that follows a concurrent future.

    Like ``asyncio.wrap_future``, but completions are coalesced through the
    loop's bridge. Cancelling the asyncio future cancels the concurrent one
    (which only stops work that has not started).
    """
    dest: asyncio.Future[T] = loop.create_future()
    bridge = bridge_for(loop)

    def _on_source_done(fut: concurrent.futures.Future[T]) -> None:
        bridge.post(_copy_state, fut, dest)

    def _on_dest_done(fut: asyncio.Future[T]) -> None:
        if fut.cancelled():
            source.cancel()

    dest.add_done_callback(_on_dest_done)
    source.add_done_callback(_on_source_done)
    return dest
