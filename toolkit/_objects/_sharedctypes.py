"""``toolkit.Value`` and ``Array``: shared memory, with an awaitable lock.

Reading or writing ``.value`` or an item takes the object's lock for an
instant, as the stdlib does; that never waits long, so it stays a plain
attribute. What can wait is holding the lock across several operations:
``async with v.get_lock():`` takes it without blocking the loop.
``RawValue`` and ``RawArray`` (no lock) are the stdlib's, passed through.

``Value(..., lock=False)`` and ``Array(..., lock=False)`` return what the
stdlib returns for them: the raw ctypes object, as ``RawValue`` and
``RawArray`` do (so ``toolkit.X`` stays a drop-in for ``multiprocessing.X``).
Hence ``__new__``: a class whose constructor returns another type.
"""

from __future__ import annotations

import multiprocessing.synchronize
from typing import TYPE_CHECKING, Any

from .._core._context import get_context
from ._synchronize import Lock, RLock

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.context import BaseContext

__all__ = ["Array", "RawArray", "RawValue", "Value"]


def _plain_lock(lock: Any) -> Any:
    if isinstance(lock, Lock | RLock):
        return lock.sync
    return lock


class _Synchronized:
    _shared: Any

    def _init_lock(self) -> None:
        plain = self._shared.get_lock()
        wrapper = RLock if isinstance(plain, multiprocessing.synchronize.RLock) else Lock
        self._lock: Lock | RLock = wrapper._rebuild(plain)

    @classmethod
    def _rebuild(cls, shared: Any) -> Any:
        self = object.__new__(cls)  # not cls.__new__: that takes the constructor's arguments
        self._shared = shared
        self._init_lock()
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return type(self)._rebuild, (self._shared,)

    @property
    def sync(self) -> Any:
        """The plain ``multiprocessing`` synchronized object underneath."""
        return self._shared

    def get_lock(self) -> Lock | RLock:
        """The lock guarding the object, awaitable: ``async with v.get_lock():``.

        A ``toolkit.RLock`` (the default) or ``toolkit.Lock``, over the same
        lock the stdlib object uses. It raises nothing.
        """
        return self._lock

    def get_obj(self) -> Any:
        """The raw ctypes object (no lock): reads and writes through it are not guarded.

        It raises nothing.
        """
        return self._shared.get_obj()


class Value(_Synchronized):
    """``multiprocessing.Value``: a ctypes value in shared memory, with an awaitable lock.

    Args:
        typecode_or_type: an ``array`` typecode ("i", "d"...) or a ctypes type.
        lock: True or None (a new RLock), a lock to use (toolkit or
            multiprocessing), or False: no lock, and then the result is the
            raw ctypes object (what ``RawValue`` returns), as in the stdlib.
        context: a multiprocessing context or start method name.

    Raises:
        TypeError: an unknown typecode ("this type has no size"), or an initial
            value of the wrong type.
        AttributeError: lock is an object without ``acquire`` (as the stdlib).
        ValueError: an unknown start method.
    """

    def __new__(
        cls,
        typecode_or_type: Any,
        *args: Any,
        lock: Any = True,
        context: BaseContext | str | None = None,
    ) -> Any:
        if lock is False:  # the stdlib's test too: any other falsy lock means "a new one"
            return RawValue(typecode_or_type, *args, context=context)
        return super().__new__(cls)

    def __init__(
        self,
        typecode_or_type: Any,
        *args: Any,
        lock: Any = True,
        context: BaseContext | str | None = None,
    ) -> None:
        self._shared = get_context(context).Value(typecode_or_type, *args, lock=_plain_lock(lock))
        self._init_lock()

    @property
    def value(self) -> Any:
        """The value; reading or setting it takes the lock for an instant (as the stdlib)."""
        return self._shared.value

    @value.setter
    def value(self, new: Any) -> None:
        self._shared.value = new

    def __repr__(self) -> str:
        return f"<toolkit.Value {self._shared.value!r}>"


class Array(_Synchronized):
    """``multiprocessing.Array``: a ctypes array in shared memory, with an awaitable lock.

    Args:
        typecode_or_type: an ``array`` typecode ("i", "d"...) or a ctypes type.
        size_or_initializer: the length (zeroed), or a sequence to copy.
        lock: as for ``Value``; False returns the raw ctypes array (what
            ``RawArray`` returns), as in the stdlib.
        context: a multiprocessing context or start method name.

    Raises:
        TypeError: an unknown typecode, or a size or items of the wrong type.
        ValueError: a negative size; an unknown start method.
        AttributeError: lock is an object without ``acquire`` (as the stdlib).
    """

    def __new__(
        cls,
        typecode_or_type: Any,
        size_or_initializer: Any,
        *,
        lock: Any = True,
        context: BaseContext | str | None = None,
    ) -> Any:
        if lock is False:
            return RawArray(typecode_or_type, size_or_initializer, context=context)
        return super().__new__(cls)

    def __init__(
        self,
        typecode_or_type: Any,
        size_or_initializer: Any,
        *,
        lock: Any = True,
        context: BaseContext | str | None = None,
    ) -> None:
        self._shared = get_context(context).Array(
            typecode_or_type, size_or_initializer, lock=_plain_lock(lock)
        )
        self._init_lock()

    def __len__(self) -> int:
        return len(self._shared)

    def __getitem__(self, index: Any) -> Any:
        return self._shared[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._shared[index] = value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._shared[:])

    def __repr__(self) -> str:
        return f"<toolkit.Array {self._shared[:]!r}>"


def RawValue(typecode_or_type: Any, *args: Any, context: BaseContext | str | None = None) -> Any:
    """``multiprocessing.RawValue``: shared memory, no lock (nothing to await).

    Args:
        typecode_or_type: an ``array`` typecode ("i", "d"...) or a ctypes type.
        *args: the initial value (default: zero).
        context: a multiprocessing context or start method name.

    Raises:
        TypeError: an unknown typecode ("this type has no size"), or an initial
            value of the wrong type.
        ValueError: an unknown start method.
    """
    return get_context(context).RawValue(typecode_or_type, *args)


def RawArray(
    typecode_or_type: Any, size_or_initializer: Any, *, context: BaseContext | str | None = None
) -> Any:
    """``multiprocessing.RawArray``: shared memory, no lock (nothing to await).

    Args:
        typecode_or_type: an ``array`` typecode ("i", "d"...) or a ctypes type.
        size_or_initializer: the length (zeroed), or a sequence to copy.
        context: a multiprocessing context or start method name.

    Raises:
        TypeError: an unknown typecode, or a size or items of the wrong type.
        ValueError: a negative size; an unknown start method.
    """
    return get_context(context).RawArray(typecode_or_type, size_or_initializer)
