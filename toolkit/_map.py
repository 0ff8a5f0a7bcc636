"""The map engine: ``MapResult``, lazy, chunked and windowed, over any engine.

Theory of operation
-------------------
A map pulls its input a chunk at a time and keeps a bounded window of chunks
in flight on whatever runs them (``AsyncExecutor``, ``Pool``, ``ThreadPool``:
the ``_MapEngine`` interface below)::

    input ──take(chunk size)──▶ engine._submit_chunk ──▶ future ─┐  at most `window`
      ▲                                                          │  futures pending
      └──── fill() again once the oldest (or first done) is in ◀─┘
                              │
                              └──▶ yield its results, one by one

* Input is pulled only to refill the window: an endless generator runs in
  constant memory, and the consumer's pace sets the map's.
* Out of process, chunks are sized by how long they took in the worker
  (_chunking.py), aiming at ~20 ms of work each; in a thread, one item each.
* The generator holds the state, never the ``MapResult``: a map dropped
  unfinished is freed at once and closed by the loop's async-generator
  finalizer, which cancels its chunks.
* A pool may end a map from outside (``_MapState.end``: its ``async with``
  was left while nobody consumed the map): chunks are cancelled and the
  consumer's next step raises the pool's error.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextlib
import itertools
import weakref
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, final

from ._core._chunking import ChunkSizer
from ._core._errors import SerializationError, TaskTimeoutError
from ._core._serialize import ChunkOutcome, dumps_call
from ._core._validate import check_timeout

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterable,
        AsyncIterator,
        Awaitable,
        Callable,
        Generator,
        Iterable,
        Iterator,
    )
    from typing import Self

R = TypeVar("R")
T = TypeVar("T")

__all__ = ["MapResult"]

# While yielding one chunk's results, a map looks at the clock every
# _YIELD_EVERY results and hands the loop back once it held it _HOLD_AT_MOST.
_YIELD_EVERY = 256
_HOLD_AT_MOST = 0.001


class _MapEngine(Protocol):
    """What a map needs from whatever runs its chunks (AsyncExecutor, Pool, ThreadPool)."""

    _serialize: bool

    @property
    def _map_workers(self) -> int: ...

    def _check_open(self) -> None: ...

    def _submit_chunk(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], chunk: list[Any], star: bool
    ) -> asyncio.Future[ChunkOutcome]: ...

    def _map_started(self, state: _MapState[Any]) -> None: ...

    def _map_finished(self, state: _MapState[Any]) -> None: ...


class _Inputs:
    """The inputs of a map, pulled a chunk at a time from sync or async iterables.

    With one iterable a chunk is a list of items (fn(item): no tuple per
    input); with several it is a list of argument tuples, zipped.
    """

    __slots__ = ("_async", "_sync", "_zipped", "star")

    def __init__(
        self, iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...], star: bool = False
    ) -> None:
        self._sync: Iterator[Any] | None = None
        self._async: list[AsyncIterator[Any]] | None = None
        self._zipped = len(iterables) > 1
        self.star = star or self._zipped
        if not any(isinstance(it, collections.abc.AsyncIterable) for it in iterables):
            sync = cast("tuple[Iterable[Any], ...]", iterables)
            # Shortest wins, as in the builtin map().
            self._sync = zip(*sync, strict=False) if self._zipped else iter(sync[0])
        else:
            self._async = [_aiter(it) for it in iterables]

    async def take(self, n: int) -> list[Any]:
        if self._sync is not None:
            return list(itertools.islice(self._sync, n))
        assert self._async is not None
        chunk: list[Any] = []
        while len(chunk) < n:
            try:
                item = tuple([await anext(it) for it in self._async])
            except StopAsyncIteration:
                break
            chunk.append(item if self._zipped else item[0])
        return chunk


async def _from_sync(iterable: Iterable[T]) -> AsyncIterator[T]:
    for item in iterable:
        yield item


def _aiter(iterable: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(iterable, collections.abc.AsyncIterable):
        return aiter(iterable)
    return _from_sync(iterable)


@final
class MapResult(Generic[R]):
    """The results of a map: an async iterator, also awaitable as a list.

    Nothing is submitted until the first result is asked for. ``done`` counts
    the results yielded so far and ``total`` is the number of inputs when it
    is known (a sized iterable), else None: enough for a progress bar.
    """

    def __init__(
        self,
        executor: _MapEngine,
        fn: Callable[..., R],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        ordered: bool,
        window: int | None,
        chunksize: int | None,
        timeout: float | None,
        *,
        star: bool = False,
    ) -> None:
        # The generator holds the state, never this object: an abandoned map
        # (a break, no aclose) is then freed at once, and the loop's
        # async-generator finalizer closes it, instead of a reference cycle
        # waiting for the cyclic GC while a pool's close() waits for the map.
        self._state = _MapState(executor, fn, iterables, ordered, window, chunksize, timeout, star)
        self._results = self._state.run()
        self._state.generator = weakref.ref(self._results)  # weak: see above
        self._step: asyncio.Future[R] | None = None

    @property
    def done(self) -> int:
        """How many results were yielded so far."""
        return self._state.done

    @property
    def total(self) -> int | None:
        """How many inputs there are, when the input is sized; else None."""
        return self._state.total

    def __aiter__(self) -> AsyncIterator[R]:
        return self if self._step is not None else self._results

    def __anext__(self) -> Awaitable[R]:
        step = self._step
        if step is not None:  # a next(timeout) that timed out left its step running
            self._step = None
            return step
        return self._results.__anext__()

    async def next(self, timeout: float | None = None) -> R:
        """Return the next result, waiting at most timeout seconds (``IMapIterator.next``).

        Raises:
            StopAsyncIteration: no more results.
            TaskTimeoutError: none within timeout (also a ``multiprocessing.TimeoutError``);
                the map goes on, and the next call returns that result.

        Cancellation:
            Safe: the map goes on; the result is kept for the next call.
        """
        timeout = check_timeout(timeout)
        step = self._step
        if step is None:
            step = self._step = asyncio.ensure_future(self._results.__anext__())
        await asyncio.wait([step], timeout=timeout)
        if not step.done():
            raise TaskTimeoutError(f"no result within {timeout:g} s (the map goes on)")
        self._step = None
        return step.result()

    def __await__(self) -> Generator[Any, None, list[R]]:
        return self._collect().__await__()

    async def _collect(self) -> list[R]:
        return [result async for result in self]

    async def aclose(self) -> None:
        """Stop the map: cancel tasks not started, pull no more input.

        Tasks already running are stopped as their engine stops a cancelled
        task (a ``Pool`` kills the worker; a thread or ``ProcessPoolExecutor``
        task runs on, its result discarded). Closing a finished or closed map
        does nothing; ``async with`` the map calls it on the way out.

        Raises:
            RuntimeError: another task is waiting for this map's next result
                (``async for`` in progress elsewhere): cancel that task instead.

        Cancellation:
            The map stops anyway: a pending ``next(timeout)`` step is cancelled
            first, and that ends the map; nothing is left running for it.
        """
        step, self._step = self._step, None
        if step is not None:
            step.cancel()
            await asyncio.wait([step])
        await self._results.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _MapState(Generic[R]):
    """A map's parameters and progress, and the generator that runs it."""

    def __init__(
        self,
        executor: _MapEngine,
        fn: Callable[..., R],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        ordered: bool,
        window: int | None,
        chunksize: int | None,
        timeout: float | None,
        star: bool,
    ) -> None:
        self._executor = executor
        self._star = star
        self.done = 0
        self.total: int | None = None
        if len(iterables) == 1 and hasattr(iterables[0], "__len__"):
            with contextlib.suppress(Exception):  # a broken __len__ just means "unknown"
                self.total = len(iterables[0])  # type: ignore[arg-type]
        self._fn = fn
        self._iterables = iterables
        self._ordered = ordered
        self._window = window
        self._chunksize = chunksize
        self._timeout = timeout
        self._called_at = perf_counter()  # the timeout runs from the call, as in the stdlib
        self.generator: weakref.ref[AsyncIterator[R]] | None = None
        self._pending: collections.deque[asyncio.Future[ChunkOutcome]] | None = None
        self._ended: BaseException | None = None  # end(): raised at the consumer's next step
        self._finished = False
        self.consumer_task = False  # map_async: a task of its own consumes it

    def held(self) -> bool:
        """Whether the map waits for its consumer: started, paused at a result nobody asked for."""
        if self.consumer_task:
            return False
        generator = self.generator() if self.generator is not None else None
        return generator is None or not getattr(generator, "ag_running", True)

    def end(self, error: BaseException) -> None:
        """Stop the map from outside (its pool closes): its next step raises error.

        Chunks in flight are cancelled and the engine is told at once, without
        running the generator (its consumer may never come back).
        """
        if self._ended is not None or self._finished:
            return
        self._ended = error
        for future in self._pending or ():
            future.cancel()
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._executor._map_finished(self)

    def _sizer(self, workers: int) -> ChunkSizer:
        if self._chunksize is not None or not self._executor._serialize:
            return ChunkSizer(self._chunksize or 1)
        # Seconds of work per chunk: an engine whose tasks cost milliseconds
        # each (Dask) asks for larger chunks than a local pipe does.
        target = getattr(self._executor, "_chunk_target", 0.02)
        return ChunkSizer(length=self.total, workers=workers, target=target)

    async def run(self) -> AsyncIterator[R]:
        executor = self._executor
        loop = asyncio.get_running_loop()
        deadline = None
        if self._timeout is not None:
            deadline = loop.time() + self._timeout - (perf_counter() - self._called_at)
        workers = executor._map_workers
        window = self._window or 2 * workers
        sizer = self._sizer(workers)
        inputs = _Inputs(self._iterables, self._star)
        fn = self._fn
        pending: collections.deque[asyncio.Future[ChunkOutcome]] = collections.deque()
        self._pending = pending
        exhausted = False
        offset = 0  # index of the next input: names a bad one in errors

        async def fill() -> None:
            nonlocal exhausted, offset
            while not exhausted and len(pending) < window:
                executor._check_open()
                chunk = await inputs.take(sizer.next_size())
                if not chunk:
                    exhausted = True
                    return
                try:
                    pending.append(executor._submit_chunk(loop, fn, chunk, inputs.star))
                except SerializationError as exc:
                    exhausted = True  # the map ends at the bad input
                    pending.extend(self._split_bad_chunk(loop, chunk, inputs.star, offset, exc))
                    return
                offset += len(chunk)

        executor._map_started(self)
        try:
            await fill()
            while pending:
                if self._ordered:
                    head = pending[0]
                else:
                    head = await _first_done(pending, deadline, self._timeout)
                try:
                    if deadline is None:
                        outcome = await head
                    else:
                        async with asyncio.timeout_at(deadline):
                            outcome = await head
                except TimeoutError:
                    raise TaskTimeoutError(
                        f"map did not finish within {self._timeout:g} s"
                    ) from None
                pending.remove(head)
                sizer.record(len(outcome.results) + (outcome.error is not None), outcome.elapsed)
                if outcome.error is None:
                    await fill()
                results = outcome.results
                suspended = perf_counter()
                for start in range(0, len(results), _YIELD_EVERY):
                    if start and perf_counter() - suspended > _HOLD_AT_MOST:
                        # A consumer that never awaits would otherwise hold the
                        # loop for a whole chunk (thousands of results).
                        await asyncio.sleep(0)
                        suspended = perf_counter()
                    batch = results[start : start + _YIELD_EVERY]
                    for result in batch:
                        yield result
                        if self._ended is not None:
                            raise self._ended
                    self.done += len(batch)
                if outcome.error is not None:
                    raise outcome.error
        finally:
            for future in pending:
                future.cancel()  # cancels the executor's (pool's) task at once
            self._finish()

    def _split_bad_chunk(
        self,
        loop: asyncio.AbstractEventLoop,
        chunk: list[Any],
        star: bool,
        offset: int,
        error: SerializationError,
    ) -> list[asyncio.Future[ChunkOutcome]]:
        """Submit the inputs before the unpicklable one; fail the map at that one."""
        if error.argument == "the function":
            raise error
        futures: list[asyncio.Future[ChunkOutcome]] = []
        for index, item in enumerate(chunk):
            try:
                dumps_call(self._fn, item if star else (item,), {})
            except SerializationError as exc:
                named = SerializationError(
                    f"map input {offset + index} ({exc.argument})", exc.type, exc.reason
                )
                if index:
                    futures.append(
                        self._executor._submit_chunk(loop, self._fn, chunk[:index], star)
                    )
                failed: asyncio.Future[ChunkOutcome] = loop.create_future()
                failed.set_result(ChunkOutcome([], named, 0.0))
                futures.append(failed)
                return futures
        raise error


async def _first_done(
    pending: collections.deque[asyncio.Future[ChunkOutcome]],
    deadline: float | None,
    timeout: float | None,
) -> asyncio.Future[ChunkOutcome]:
    for future in pending:
        if future.done():
            return future
    remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
    done, _ = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    if not done:
        raise TaskTimeoutError(f"map did not finish within {timeout:g} s")
    return next(iter(done))
