"""Calls and outcomes on the wire to another process.

Theory of operation
-------------------
The parent pickles a call *itself*, on the caller's side, before any
executor sees it::

    parent                                   worker process
    dumps_call(fn, args, kwargs) ─ bytes ─▶  run_call(payload)
        │ pickle (by reference, fast)            fn(*args, **kwargs)
        │ else cloudpickle (by value)            dumps the outcome itself
        │ else SerializationError(which part)  ◀─ bytes ─ (ok, value | exc, tb)
    load_outcome(bytes) → value, or raise exc from RemoteTraceback(tb)

Why pickle here rather than let the executor do it:

* a bad argument fails *at the call* with an error naming it, instead of
  inside an executor's feeder thread (a hang in aiomultiprocess, a broken
  pool elsewhere; docs/internals.md, "Serialization");
* lambdas, closures and functions typed at a prompt go by value (cloudpickle),
  whichever executor runs them;
* every engine (ProcessPoolExecutor, Dask, loky) returns the same outcome:
  the task's own exception type with the worker's traceback as ``__cause__``,
  and an unpicklable result or exception is named, not a broken pool. A
  failure travels as a *value*, so Dask does not log it as "Compute Failed".

The executor then pickles only a ``bytes`` object, which costs a copy.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
import traceback
from types import BuiltinFunctionType, CoroutineType, FunctionType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import SerializationError

# The errors are imported where a failure is built, not here: a worker process
# imports this module and should not pay for asyncio (which _errors needs).

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "ChunkOutcome",
    "dumps_call",
    "dumps_chunk",
    "dumps_failure",
    "finish",
    "load_chunk_outcome",
    "load_outcome",
    "picklable_callable",
    "run_call",
    "run_chunk",
    "run_chunk_here",
]

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _cloudpickle() -> Any:
    import cloudpickle

    return cloudpickle


def _by_value(fn: object) -> bool:
    """Tell whether fn must travel by value: defined in ``__main__`` where a child cannot find it.

    A script's own top-level functions go by reference, as with plain
    multiprocessing: the child re-imports the script (as ``__mp_main__``,
    under spawn and forkserver), so they are the same functions there and
    share the same module globals (an initializer can fill a global a task
    reads). Everything else of ``__main__`` goes by value (cloudpickle): a
    REPL's, ``python -c``'s or a playground prompt's functions, lambdas,
    nested functions, and functions merely attached to ``__main__``.
    """
    if getattr(fn, "__module__", None) != "__main__":
        return False
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    code = getattr(fn, "__code__", None)
    if main_file is None or code is None:
        return True
    found: object = main
    for part in getattr(fn, "__qualname__", "<unknown>").split("."):
        found = getattr(found, part, None)
    if found is not fn:
        return True
    return bool(os.path.abspath(code.co_filename) != os.path.abspath(main_file))


def _dumps(obj: object, by_value: bool) -> bytes:
    if not by_value:
        try:
            return pickle.dumps(obj, _PROTOCOL)
        except Exception:  # noqa: BLE001 - any failure: retry by value, then diagnose
            pass
    data: bytes = _cloudpickle().dumps(obj, _PROTOCOL)
    return data


def _first_unpicklable(parts: Iterable[tuple[str, object]]) -> SerializationError | None:
    from ._errors import SerializationError, qualified_type_name

    for label, obj in parts:
        try:
            _dumps(obj, _by_value(obj))
        except Exception as exc:  # noqa: BLE001 - every pickling failure is diagnosed the same way
            return SerializationError(
                label, qualified_type_name(obj), f"{type(exc).__name__}: {exc}"
            )
    return None


# A call on the wire: the function's reference pickle, length-prefixed, then the
# pickle of (args, kwargs); or a zero length, then the pickle of the whole call.
_REF_SIZE = struct.Struct("!I")
_WHOLE_CALL = _REF_SIZE.pack(0)
# Pickling a function by reference makes pickle import its module and look the
# name up on every call: about 0.5 us of the 0.9 a tiny call costs to pickle.
# Kept here per function object, bounded (a program calls few functions many times).
_references: dict[object, bytes] = {}
_REFERENCES_MAX = 512


def _reference(fn: object) -> bytes | None:
    """fn's reference pickle, length-prefixed and cached; None: the call carries fn itself.

    Only a plain function that its module still names, under its own name,
    is cached: a partial or a bound method carries state that may change
    between calls, a function of ``__main__`` may go by value, and one that
    was rebound in its module would not pickle by reference any more.
    """
    if type(fn) is not FunctionType and type(fn) is not BuiltinFunctionType:
        return None
    module_name = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", "")
    module = sys.modules.get(module_name) if type(module_name) is str else None
    if module is None or module_name == "__main__" or getattr(module, name, None) is not fn:
        return None  # (a qualified name with dots, "C.f", is never found this way)
    ref = _references.get(fn)
    if ref is None:
        try:
            data = pickle.dumps(fn, _PROTOCOL)
        except Exception:  # noqa: BLE001 - not by reference: the call carries it
            return None
        if len(_references) >= _REFERENCES_MAX:
            _references.clear()
        ref = _references[fn] = _REF_SIZE.pack(len(data)) + data
    return ref


def dumps_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    """Pickle a call for another process.

    Raises:
        SerializationError: the function or an argument cannot be pickled;
            the error names which one and its type.
    """
    ref = None
    try:
        ref = _reference(fn)
        if ref is not None:
            return ref + pickle.dumps((args, kwargs), _PROTOCOL)
        return _WHOLE_CALL + _dumps((fn, args, kwargs), _by_value(fn))
    except Exception as exc:  # noqa: BLE001 - every pickling failure is diagnosed below
        cause = exc
        if ref is not None:  # an argument failed plain pickle: by value, or named
            try:
                return _WHOLE_CALL + _dumps((fn, args, kwargs), True)
            except Exception as by_value_exc:  # noqa: BLE001 - diagnosed below
                cause = by_value_exc
        parts: list[tuple[str, object]] = [("the function", fn)]
        parts += [(f"argument {i}", arg) for i, arg in enumerate(args)]
        parts += [(f"keyword argument {name!r}", value) for name, value in kwargs.items()]
        from ._errors import SerializationError, qualified_type_name

        error = _first_unpicklable(parts) or SerializationError(
            "the call", qualified_type_name(fn), f"{type(cause).__name__}: {cause}"
        )
        raise error from cause


def _loads_call(payload: bytes | memoryview) -> tuple[Callable[..., Any], Any, Any]:
    """The call dumps_call pickled: (fn, args, kwargs)."""
    view = memoryview(payload)
    (size,) = _REF_SIZE.unpack_from(view)
    if size == 0:
        fn, args, kwargs = pickle.loads(view[4:])
    else:
        # Unpickling a reference imports and looks the name up (~1 us, a fifth
        # of a tiny task's cost in a worker): the function found is kept, as
        # the parent keeps its reference, per worker and bounded.
        ref = bytes(view[4 : 4 + size])
        fn = _functions.get(ref)
        if fn is None:
            fn = pickle.loads(ref)
            if len(_functions) >= _REFERENCES_MAX:
                _functions.clear()
            _functions[ref] = fn
        args, kwargs = pickle.loads(view[4 + size :])
    return fn, args, kwargs


_functions: dict[bytes, Callable[..., Any]] = {}  # a worker's: reference pickle -> function


def dumps_chunk(fn: Callable[..., Any], chunk: list[Any], star: bool) -> bytes:
    """Pickle a chunk of calls of one function (a map's batch of inputs).

    Args:
        star: each item is a tuple of arguments (fn(*item)); otherwise each
            item is the one argument (fn(item)), which saves a tuple per input.

    Raises:
        SerializationError: as dumps_call; ``argument`` is "the function" or
            names the item within the chunk ("item 3", "item 3, argument 0").
    """
    try:
        return _dumps((fn, chunk, star), _by_value(fn))
    except Exception as exc:
        parts: list[tuple[str, object]] = [("the function", fn)]
        if star:
            parts += [
                (f"item {i}, argument {j}", arg)
                for i, args in enumerate(chunk)
                for j, arg in enumerate(args)
            ]
        else:
            parts += [(f"item {i}", item) for i, item in enumerate(chunk)]
        from ._errors import SerializationError, qualified_type_name

        error = _first_unpicklable(parts) or SerializationError(
            "a map input", qualified_type_name(fn), f"{type(exc).__name__}: {exc}"
        )
        raise error from exc


# --- worker side: no asyncio, nothing but the call --------------------------------------------


class _Boxed:
    """A task's exception, pickled on its own inside the outcome.

    Many exceptions pickle but cannot be rebuilt (an ``__init__`` with more
    required arguments than it passes to ``super().__init__``). Unpickled
    alone, in the parent, such a failure becomes a ``SerializationError``
    that names the type and the message instead of breaking the whole
    outcome (and losing the worker's traceback with it).
    """

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple[Callable[..., BaseException], tuple[bytes, str, str]]:
        from ._errors import qualified_type_name

        data = _dumps(self.exc, False)  # raises if it cannot be pickled: diagnosed by the caller
        name = qualified_type_name(self.exc).replace("__mp_main__.", "__main__.")
        return _unbox, (data, name, _message(self.exc))


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
        return "<message unavailable>"


def _unbox(data: bytes, type_name: str, message: str) -> BaseException:
    try:
        exc: BaseException = pickle.loads(data)
    except Exception as error:  # noqa: BLE001 - any failure: named, not lost
        from ._errors import SerializationError

        return SerializationError(
            "the exception",
            type_name,
            f"the task raised {type_name}: {message}, which cannot be rebuilt here "
            f"({type(error).__name__}: {error}); the worker's traceback follows",
            unpickle=True,
        )
    return exc


def _failure(exc: BaseException) -> tuple[bool, Any, str]:
    tb = "".join(traceback.format_exception(exc))
    exc.__traceback__ = None  # frames are not picklable and tb carries them as text
    return (False, _Boxed(exc), f'\n"""\n{tb}"""')


def _unboxed(value: object) -> object:
    return value.exc if isinstance(value, _Boxed) else value


def _unpicklable(what: str, value: object, exc: Exception) -> SerializationError:
    from ._errors import SerializationError, qualified_type_name

    return SerializationError(what, qualified_type_name(value), f"{type(exc).__name__}: {exc}")


def _dumps_outcome(outcome: tuple[bool, Any, str]) -> bytes:
    try:
        return _dumps(outcome, False)
    except Exception as exc:  # noqa: BLE001 - named below, whatever went wrong
        ok, value, tb = outcome
        # The original traceback still travels as text: it becomes the cause.
        error = _unpicklable("the result" if ok else "the exception", _unboxed(value), exc)
        return pickle.dumps((False, error, tb), _PROTOCOL)


def dumps_failure(exc: BaseException) -> bytes:
    """Pickle a failure (as run_call would): load_outcome raises it with its traceback."""
    return _dumps_outcome(_failure(exc))


def finish(value: Any) -> Any:
    """A task's value; a coroutine (the task was a coroutine function) is run to its end here.

    Then ``pool.apply(async_fn, ...)`` works as aiomultiprocess users expect:
    the coroutine runs in the worker's own event loop, one per task.
    """
    if type(value) is CoroutineType:
        import asyncio

        return asyncio.run(value)
    return value


def run_call(payload: bytes) -> bytes:
    """Run a pickled call in this (worker) process; return its pickled outcome."""
    try:
        fn, args, kwargs = _loads_call(payload)
        outcome: tuple[bool, Any, str] = (True, finish(fn(*args, **kwargs)), "")
    except BaseException as exc:  # noqa: BLE001 - every failure crosses back to the caller
        outcome = _failure(exc)
    return _dumps_outcome(outcome)


def _run_items(fn: Callable[..., Any], chunk: list[Any], star: bool, results: list[Any]) -> None:
    append = results.append  # appended one by one: a failure keeps the results before it
    coroutine = CoroutineType
    if star:
        for args in chunk:
            value = fn(*args)
            append(finish(value) if type(value) is coroutine else value)
    else:
        for item in chunk:
            value = fn(item)
            append(finish(value) if type(value) is coroutine else value)


def run_chunk(payload: bytes) -> bytes:
    """Run a pickled chunk of calls; stop at the first failure.

    The outcome is (results, failure or None, seconds spent): results of the
    items before a failure are kept, so a map yields them before it raises.
    """
    results: list[Any] = []
    failure = None
    start = time.perf_counter()
    try:
        # Unpickling runs the senders' code too (a __setstate__, an import): it
        # fails the task, not the worker.
        fn, chunk, star = pickle.loads(payload)
        _run_items(fn, chunk, star, results)
    except BaseException as exc:  # noqa: BLE001 - every failure crosses back to the caller
        failure = _failure(exc)
    elapsed = time.perf_counter() - start
    try:
        return _dumps((results, failure, elapsed), False)
    except Exception as exc:  # noqa: BLE001 - find the part at fault, keep the results before it
        for i, value in enumerate(results):
            try:
                _dumps(value, False)
            except Exception as item_exc:  # noqa: BLE001
                error = _unpicklable("the result", value, item_exc)
                return pickle.dumps((results[:i], (False, error, ""), elapsed), _PROTOCOL)
        assert failure is not None  # the results pickle: the exception is at fault
        error = _unpicklable("the exception", _unboxed(failure[1]), exc)
        return pickle.dumps((results, (False, error, failure[2]), elapsed), _PROTOCOL)


# --- parent side --------------------------------------------------------------------------------


def _caller_error(exc: BaseException, tb: str) -> BaseException:
    """What the caller gets for a worker's exception: its traceback attached, exits wrapped."""
    from ._errors import RemoteTraceback, as_task_error

    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    # A task's sys.exit() or KeyboardInterrupt must not end the caller's program.
    return as_task_error(exc)


def _raise_remote(exc: BaseException, tb: str) -> None:
    raise _caller_error(exc, tb)


def _loads_outcome(data: bytes) -> Any:
    try:
        return pickle.loads(data)
    except Exception as exc:
        # The result's own unpickling failed (an exception's is handled by _unbox).
        from ._errors import SerializationError

        raise SerializationError(
            "the result", "unknown", f"{type(exc).__name__}: {exc}", unpickle=True
        ) from exc


def load_outcome(data: bytes) -> Any:
    """Return the value of a worker's outcome, or raise its exception."""
    ok, value, tb = _loads_outcome(data)
    if ok:
        return value
    _raise_remote(value, tb)
    raise AssertionError("unreachable")  # pragma: no cover


class ChunkOutcome:
    """A chunk's results, the exception that stopped it (if any), and its run time."""

    __slots__ = ("elapsed", "error", "results")

    def __init__(self, results: list[Any], error: BaseException | None, elapsed: float) -> None:
        self.results = results
        self.error = error
        self.elapsed = elapsed


def load_chunk_outcome(data: bytes) -> ChunkOutcome:
    results, failure, elapsed = _loads_outcome(data)
    error = None
    if failure is not None:
        _, error, tb = failure
        error = _caller_error(error, tb)
    return ChunkOutcome(results, error, elapsed)


def run_chunk_here(fn: Callable[..., Any], chunk: list[Any], star: bool) -> ChunkOutcome:
    """Run a chunk in this process (a thread executor): no pickling, no remote traceback."""
    results: list[Any] = []
    start = time.perf_counter()
    try:
        _run_items(fn, chunk, star, results)
    except BaseException as exc:  # noqa: BLE001 - the map raises it after the results before it
        from ._errors import as_task_error

        return ChunkOutcome(results, as_task_error(exc), time.perf_counter() - start)
    return ChunkOutcome(results, None, time.perf_counter() - start)


class _ByValue:
    """A callable that pickles by value (cloudpickle) and unpickles as itself."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[bytes]]:
        cloudpickle = _cloudpickle()
        return cloudpickle.loads, (cloudpickle.dumps(self.fn, _PROTOCOL),)


def picklable_callable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Return fn, or a wrapper that pickles it by value if pickle cannot send it by reference.

    For APIs that pickle a function later, out of our hands (a Process target
    under spawn or forkserver).
    """
    if not _by_value(fn):
        try:
            pickle.dumps(fn, _PROTOCOL)
        except Exception:  # noqa: BLE001 - any failure: by value below
            pass
        else:
            return fn
    return _ByValue(fn)
