"""The wire format of calls and outcomes, run in-process: run_call is the worker-side function."""

from __future__ import annotations

import functools
import pickle
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers
from toolkit._core._serialize import (
    dumps_call,
    dumps_chunk,
    load_chunk_outcome,
    load_outcome,
    run_call,
    run_chunk,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def _roundtrip(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return load_outcome(run_call(dumps_call(fn, args, kwargs)))


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _lock_at(bad: int, x: int) -> object:
    """A result that cannot be pickled for input ``bad``."""
    return threading.Lock() if x == bad else x


def _interrupt() -> None:
    raise KeyboardInterrupt("stop")


def _unpicklable_at(bad: int, x: int) -> int:
    if x == bad:
        raise _helpers.Unpicklable(f"boom at {x}")
    return x


# --- calls that round trip ----------------------------------------------------------------------


def test_call_of_a_plain_function() -> None:
    assert _roundtrip(_helpers.add, 2, b=3) == 5
    assert _roundtrip(_helpers.square, 7) == 49


def test_call_returns_the_value_unchanged() -> None:
    value = {"a": [1, 2.5, None], "b": (b"x", frozenset({3}))}
    assert _roundtrip(_helpers.identity, value) == value


def test_call_of_a_lambda() -> None:
    assert _roundtrip(lambda x, y=1: x * 10 + y, 4, y=2) == 42


def test_call_of_a_closure() -> None:
    offset = 100

    def shifted(x: int) -> int:
        return x + offset

    assert _roundtrip(shifted, 5) == 105


def test_call_of_a_main_function_goes_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripled(x: int) -> int:
        return 3 * x

    # A function that plain pickle *could* send by reference, as __main__.tripled ...
    tripled.__module__ = "__main__"
    tripled.__qualname__ = "tripled"
    monkeypatch.setattr(sys.modules["__main__"], "tripled", tripled, raising=False)
    payload = dumps_call(tripled, (14,), {})
    # ... but a spawned child's __main__ has no such name: the call must carry the code.
    monkeypatch.delattr(sys.modules["__main__"], "tripled")
    assert load_outcome(run_call(payload)) == 42


def test_call_by_reference_stays_small() -> None:
    # Module-level functions go by reference (plain pickle), not by value.
    payload = dumps_call(_helpers.square, (3,), {})
    assert b"tests._helpers" in payload
    assert b"square" in payload
    assert len(payload) < 200


def test_call_by_reference_is_never_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    # The reference pickle of a function is cached: a rebinding of its name, or
    # state carried by a partial, must still reach the worker as it is now.
    original = _helpers.square
    assert _roundtrip(original, 3) == 9
    monkeypatch.setattr(_helpers, "square", _helpers.identity)
    assert _roundtrip(original, 3) == 9  # by value now: the name means another function
    assert _roundtrip(_helpers.square, 3) == 3
    state = [1]
    adder = functools.partial(_helpers.add, state[0])
    assert _roundtrip(adder, 1) == 2
    adder = functools.partial(_helpers.add, 10)
    assert _roundtrip(adder, 1) == 11


def test_call_by_reference_falls_back_for_an_argument_only_cloudpickle_takes() -> None:
    assert _roundtrip(_helpers.identity, 5) == 5
    returned = _roundtrip(_helpers.identity, lambda: 42)
    assert returned() == 42


# --- calls that cannot be pickled ---------------------------------------------------------------


def test_dumps_call_names_the_function() -> None:
    fn = functools.partial(_helpers.identity, threading.Lock())
    with pytest.raises(toolkit.SerializationError, match="the function") as info:
        dumps_call(fn, (), {})
    assert info.value.argument == "the function"
    assert info.value.type == "functools.partial"


@pytest.mark.parametrize("position", [0, 1, 2])
def test_dumps_call_names_the_argument(position: int) -> None:
    lock = threading.Lock()
    args: list[object] = [1, 2, 3]
    args[position] = lock
    with pytest.raises(toolkit.SerializationError, match=f"argument {position}") as info:
        dumps_call(_helpers.identity, tuple(args), {})
    assert info.value.argument == f"argument {position}"
    assert info.value.type == _type_name(lock)
    assert _type_name(lock) in str(info.value)


def test_dumps_call_names_the_keyword_argument() -> None:
    lock = threading.Lock()
    kwargs: Mapping[str, object] = {"a": 1, "x": lock}
    with pytest.raises(toolkit.SerializationError, match="keyword argument 'x'") as info:
        dumps_call(_helpers.add, (), kwargs)
    assert info.value.argument == "keyword argument 'x'"
    assert info.value.type == _type_name(lock)


def test_dumps_call_error_is_a_pickling_error_with_a_cause() -> None:
    with pytest.raises(pickle.PicklingError) as info:
        dumps_call(_helpers.identity, (threading.Lock(),), {})
    assert isinstance(info.value, toolkit.SerializationError)
    assert info.value.__cause__ is not None
    assert info.value.reason  # the underlying error, in words


def test_dumps_call_names_the_first_bad_part() -> None:
    with pytest.raises(toolkit.SerializationError) as info:
        dumps_call(_helpers.add, (1, threading.Lock()), {"b": threading.RLock()})
    assert info.value.argument == "argument 1"


# --- outcomes: exceptions -----------------------------------------------------------------------


def test_outcome_reraises_the_tasks_own_exception() -> None:
    data = run_call(dumps_call(_helpers.fail, ("kaboom",), {}))
    with pytest.raises(_helpers.CustomError, match="kaboom") as info:
        load_outcome(data)
    assert type(info.value) is _helpers.CustomError
    cause = info.value.__cause__
    assert isinstance(cause, toolkit.RemoteTraceback)
    text = str(cause)
    assert "Traceback (most recent call last)" in text
    assert "in fail" in text
    assert "raise CustomError(message)" in text
    assert "CustomError: kaboom" in text


def test_outcome_of_a_builtin_exception() -> None:
    data = run_call(dumps_call(int, ("not a number",), {}))
    with pytest.raises(ValueError, match="invalid literal") as info:
        load_outcome(data)
    assert isinstance(info.value.__cause__, toolkit.RemoteTraceback)


class _NeedsTwo(Exception):
    """Pickles, but cannot be rebuilt: __init__ wants more than it gives super()."""

    def __init__(self, a: str, b: int) -> None:
        super().__init__(a)
        self.b = b


def _raise_needs_two() -> None:
    raise _NeedsTwo("the real error", 2)


def test_outcome_carries_base_exceptions_too() -> None:
    # Carried across, then handed over as TaskExitError: a KeyboardInterrupt
    # raised in the caller would stop its program.
    data = run_call(dumps_call(_interrupt, (), {}))
    with pytest.raises(toolkit.TaskExitError) as info:
        load_outcome(data)
    original = info.value.__cause__
    assert isinstance(original, KeyboardInterrupt)
    assert original.args == ("stop",)
    assert isinstance(original.__cause__, toolkit.RemoteTraceback)


def test_outcome_of_an_exception_that_cannot_be_rebuilt_names_it() -> None:
    data = run_call(dumps_call(_raise_needs_two, (), {}))
    with pytest.raises(toolkit.SerializationError, match="the real error") as info:
        load_outcome(data)
    assert info.value.unpickle
    assert "_NeedsTwo" in str(info.value)
    assert isinstance(info.value.__cause__, toolkit.RemoteTraceback)
    assert "_raise_needs_two" in str(info.value.__cause__)


def test_outcome_names_an_unpicklable_result() -> None:
    data = run_call(dumps_call(_helpers.return_lock, (), {}))
    with pytest.raises(toolkit.SerializationError, match="the result") as info:
        load_outcome(data)
    assert info.value.argument == "the result"
    assert info.value.type == _type_name(threading.Lock())


def test_outcome_names_an_unpicklable_exception() -> None:
    data = run_call(dumps_call(_helpers.raise_unpicklable, (), {}))
    with pytest.raises(toolkit.SerializationError, match="the exception") as info:
        load_outcome(data)
    assert info.value.argument == "the exception"
    assert info.value.type == "tests._helpers.Unpicklable"
    # The original traceback still travels, as text.
    cause = info.value.__cause__
    assert isinstance(cause, toolkit.RemoteTraceback)
    assert "boom" in str(cause)
    assert "in raise_unpicklable" in str(cause)


def test_outcome_is_plain_pickle() -> None:
    # The parent unpickles outcomes with plain pickle: no cloudpickle needed on that side.
    ok, value, tb = pickle.loads(run_call(dumps_call(_helpers.square, (4,), {})))
    assert (ok, value, tb) == (True, 16, "")


# --- chunks -------------------------------------------------------------------------------------


def test_chunk_returns_every_result() -> None:
    payload = dumps_chunk(_helpers.add, [(i, 10) for i in range(5)], star=True)
    outcome = load_chunk_outcome(run_chunk(payload))
    assert outcome.results == [10, 11, 12, 13, 14]
    assert outcome.error is None
    assert outcome.elapsed >= 0


def test_chunk_of_single_arguments() -> None:
    outcome = load_chunk_outcome(run_chunk(dumps_chunk(_helpers.square, [1, 2, 3], star=False)))
    assert outcome.results == [1, 4, 9]
    assert outcome.error is None


def test_chunk_of_single_tuple_arguments() -> None:
    # Without star, a tuple is the one argument, not unpacked.
    payload = dumps_chunk(_helpers.identity, [(1, 2), ()], star=False)
    assert load_chunk_outcome(run_chunk(payload)).results == [(1, 2), ()]


def test_chunk_of_a_lambda() -> None:
    outcome = load_chunk_outcome(run_chunk(dumps_chunk(lambda x: -x, [1, 2], star=False)))
    assert outcome.results == [-1, -2]


def test_chunk_keeps_the_results_before_a_failure() -> None:
    payload = dumps_chunk(_helpers.fail_on, [(3, i) for i in range(6)], star=True)
    outcome = load_chunk_outcome(run_chunk(payload))
    assert outcome.results == [0, 1, 2]
    assert isinstance(outcome.error, _helpers.CustomError)
    assert str(outcome.error) == "bad input 3"
    cause = outcome.error.__cause__
    assert isinstance(cause, toolkit.RemoteTraceback)
    assert "in fail_on" in str(cause)
    assert outcome.elapsed >= 0


def test_chunk_of_nothing() -> None:
    outcome = load_chunk_outcome(run_chunk(dumps_chunk(_helpers.square, [], star=False)))
    assert (outcome.results, outcome.error) == ([], None)
    assert outcome.elapsed >= 0


def test_chunk_names_an_unpicklable_result() -> None:
    payload = dumps_chunk(_lock_at, [(2, i) for i in range(5)], star=True)
    outcome = load_chunk_outcome(run_chunk(payload))
    assert outcome.results == [0, 1]
    assert isinstance(outcome.error, toolkit.SerializationError)
    assert outcome.error.argument == "the result"
    assert outcome.error.type == _type_name(threading.Lock())


def test_chunk_names_an_unpicklable_exception() -> None:
    payload = dumps_chunk(_unpicklable_at, [(2, i) for i in range(5)], star=True)
    outcome = load_chunk_outcome(run_chunk(payload))
    assert outcome.results == [0, 1]
    assert isinstance(outcome.error, toolkit.SerializationError)
    assert outcome.error.argument == "the exception"
    assert isinstance(outcome.error.__cause__, toolkit.RemoteTraceback)
    assert "boom at 2" in str(outcome.error.__cause__)


def test_dumps_chunk_names_the_item_and_argument() -> None:
    lock = threading.Lock()
    chunk: list[tuple[Any, ...]] = [(1, 2), (3, 4), (5, lock)]
    with pytest.raises(toolkit.SerializationError, match="item 2, argument 1") as info:
        dumps_chunk(_helpers.add, chunk, star=True)
    assert info.value.argument == "item 2, argument 1"
    assert info.value.type == _type_name(lock)


def test_dumps_chunk_names_the_function() -> None:
    fn = functools.partial(_helpers.identity, threading.Lock())
    with pytest.raises(toolkit.SerializationError, match="the function") as info:
        dumps_chunk(fn, [()], star=True)
    assert info.value.argument == "the function"
    assert info.value.type == "functools.partial"


def test_dumps_chunk_names_the_item() -> None:
    lock = threading.Lock()
    with pytest.raises(toolkit.SerializationError, match="item 3") as info:
        dumps_chunk(_helpers.identity, [0, 1, 2, lock, 4], star=False)
    assert info.value.argument == "item 3"
    assert info.value.type == _type_name(lock)
