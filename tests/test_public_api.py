"""The public surface: __all__, __module__ fixups, docstrings, exceptions that survive pickle."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import multiprocessing
import pickle
import queue
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import toolkit

if TYPE_CHECKING:
    from collections.abc import Callable

PLAYGROUND = Path(__file__).resolve().parents[1] / "playground"

# One sample of every exception class the toolkit exports, built with its real arguments.
SAMPLES: dict[type[BaseException], Callable[[], BaseException]] = {
    toolkit.ToolkitError: lambda: toolkit.ToolkitError("something went wrong"),
    toolkit.WorkerDiedError: lambda: toolkit.WorkerDiedError(4321, -9, "square(3)"),
    toolkit.TaskTimeoutError: lambda: toolkit.TaskTimeoutError("task still running after 5 s"),
    toolkit.ClosedError: lambda: toolkit.ClosedError("queue is closed"),
    toolkit.ConnectionClosedError: lambda: toolkit.ConnectionClosedError("handle is closed"),
    toolkit.TaskExitError: lambda: toolkit.TaskExitError("SystemExit", 3, "cli(['-x'])"),
    toolkit.PoolClosedError: lambda: toolkit.PoolClosedError("pool is closed"),
    toolkit.BrokenPoolError: lambda: toolkit.BrokenPoolError("the initializer raised"),
    toolkit.SerializationError: lambda: toolkit.SerializationError(
        "argument 0", "_thread.lock", "TypeError: cannot pickle '_thread.lock' object"
    ),
    toolkit.QueueEmpty: lambda: toolkit.QueueEmpty(),
    toolkit.QueueFull: lambda: toolkit.QueueFull(),
    toolkit.ManagerDiedError: lambda: toolkit.ManagerDiedError("the manager process 4321 died"),
    toolkit.RemoteTraceback: lambda: toolkit.RemoteTraceback(
        '\n"""\nTraceback (most recent call last):\n  ...\nValueError: x\n"""'
    ),
}

# The public attributes each exception carries beyond its args.
ATTRIBUTES: dict[type[BaseException], tuple[str, ...]] = {
    toolkit.WorkerDiedError: ("pid", "exitcode", "task", "signal"),
    toolkit.SerializationError: ("argument", "type", "reason", "unpickle"),
    toolkit.TaskExitError: ("kind", "code", "task"),
    toolkit.RemoteTraceback: ("tb",),
}

# exception class -> the stdlib classes users already catch, which it must also be.
HIERARCHY: dict[type[BaseException], tuple[type[BaseException], ...]] = {
    toolkit.WorkerDiedError: (),
    toolkit.TaskTimeoutError: (TimeoutError, multiprocessing.TimeoutError),
    toolkit.ClosedError: (ValueError,),
    toolkit.ConnectionClosedError: (toolkit.ClosedError, ValueError, OSError),
    toolkit.TaskExitError: (),
    toolkit.PoolClosedError: (toolkit.ClosedError, ValueError, RuntimeError),
    toolkit.BrokenPoolError: (concurrent.futures.BrokenExecutor, RuntimeError),
    toolkit.SerializationError: (pickle.PicklingError,),
    toolkit.QueueEmpty: (queue.Empty, asyncio.QueueEmpty),
    toolkit.QueueFull: (queue.Full, asyncio.QueueFull),
    toolkit.ManagerDiedError: (ConnectionError, OSError),
}


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """Sort key of ruff's RUF022: SCREAMING_CASE, then CamelCase, then the rest; natural order."""
    if len(name) > 1 and name.isupper():
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    return category, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _name(cls: type[BaseException]) -> str:
    return cls.__name__


# Sorted, for stable test ids (mypy infers object for sorted() inside a parametrize call).
ERRORS: list[type[BaseException]] = sorted(HIERARCHY, key=_name)
EXCEPTIONS: list[type[BaseException]] = sorted(SAMPLES, key=_name)


def _public_objects() -> list[tuple[str, object]]:
    return [(name, getattr(toolkit, name)) for name in toolkit.__all__]


def _exception_classes() -> list[type[BaseException]]:
    return [
        obj
        for _, obj in _public_objects()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ]


def _private_references(source: str) -> list[str]:
    """Return the private toolkit names a source text uses (toolkit._x, from toolkit import _x)."""
    found = [
        name
        for name in re.findall(r"\btoolkit\.(_\w*)", source)
        if not (name.startswith("__") and name.endswith("__"))  # toolkit.__version__ is public
    ]
    for names in re.findall(r"^\s*from\s+toolkit\s+import\s+\(?([^)\n]*)", source, re.MULTILINE):
        found += [name for name in re.findall(r"\b(_\w*)", names) if not name.startswith("__")]
    return found


# --- __all__ ------------------------------------------------------------------------------------


def test_all_is_a_sorted_tuple() -> None:
    # Sorted as ruff's RUF022 (selected through "RUF") sorts __all__: isort-style, constants
    # first. Plain sorted() would put "AsyncExecutor" before "FIRST_COMPLETED", which the
    # lint rule rejects, so the test and the linter agree on one order.
    assert isinstance(toolkit.__all__, tuple)
    assert toolkit.__all__ == tuple(sorted(toolkit.__all__, key=_isort_key))
    assert len(set(toolkit.__all__)) == len(toolkit.__all__)


def test_all_names_exist() -> None:
    missing = [name for name in toolkit.__all__ if not hasattr(toolkit, name)]
    assert missing == []


def test_all_lists_no_private_name() -> None:
    assert [name for name in toolkit.__all__ if name.startswith("_")] == []


def test_public_classes_and_functions_say_toolkit() -> None:
    wrong = [
        f"{name}: {obj.__module__}"
        for name, obj in _public_objects()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ != "toolkit"
    ]
    assert wrong == []


def test_public_classes_and_functions_have_docstrings() -> None:
    undocumented = [
        name
        for name, obj in _public_objects()
        if (inspect.isclass(obj) or inspect.isfunction(obj))
        and not (inspect.getdoc(obj) or "").strip()
    ]
    assert undocumented == []


# --- exceptions: hierarchy ----------------------------------------------------------------------


def test_exceptions_every_one_has_a_sample() -> None:
    # A new exception class must be added to SAMPLES, so that it is checked below.
    assert set(_exception_classes()) == set(SAMPLES)


@pytest.mark.parametrize("cls", ERRORS)
def test_exceptions_subclass_toolkit_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, toolkit.ToolkitError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", ERRORS)
def test_exceptions_are_the_stdlib_classes_users_catch(cls: type[BaseException]) -> None:
    for base in HIERARCHY[cls]:
        assert issubclass(cls, base), f"{cls.__name__} is not a {base.__qualname__}"
        with pytest.raises(base):
            raise SAMPLES[cls]()


def test_exceptions_every_toolkit_error_is_in_the_hierarchy_table() -> None:
    errors = {cls for cls in _exception_classes() if issubclass(cls, toolkit.ToolkitError)}
    assert errors - {toolkit.ToolkitError} == set(HIERARCHY)


def test_remote_traceback_is_not_a_toolkit_error() -> None:
    # It is a cause attached to the task's own exception, never raised by itself.
    assert not issubclass(toolkit.RemoteTraceback, toolkit.ToolkitError)
    assert issubclass(toolkit.RemoteTraceback, Exception)


# --- exceptions: pickle -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("cls", EXCEPTIONS)
def test_exceptions_survive_pickle(cls: type[BaseException], protocol: int) -> None:
    original = SAMPLES[cls]()
    data = pickle.dumps(original, protocol)
    copy = pickle.loads(data)
    assert type(copy) is cls
    assert str(copy) == str(original)
    assert copy.args == original.args
    for attribute in ATTRIBUTES.get(cls, ()):
        assert getattr(copy, attribute) == getattr(original, attribute), attribute


@pytest.mark.parametrize("cls", EXCEPTIONS)
def test_exceptions_pickle_by_their_public_name(cls: type[BaseException]) -> None:
    data = pickle.dumps(SAMPLES[cls](), 0)  # protocol 0 is text: the class reference is readable
    assert b"toolkit" in data
    assert b"toolkit._" not in data


def test_worker_died_error_names_the_signal() -> None:
    error = toolkit.WorkerDiedError(4321, -signal.SIGKILL, "square(3)")
    assert error.signal is signal.SIGKILL
    assert "SIGKILL" in str(error)
    assert "4321" in str(error)
    assert "square(3)" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.signal is signal.SIGKILL
    assert (copy.pid, copy.exitcode, copy.task) == (4321, -signal.SIGKILL, "square(3)")
    assert "SIGKILL" in str(copy)


def test_worker_died_error_of_an_exit_has_no_signal() -> None:
    error = toolkit.WorkerDiedError(4321, 3)
    assert error.signal is None
    assert error.task is None
    assert "exit code 3" in str(error)
    assert "while running" not in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.pid, copy.exitcode, copy.task, copy.signal) == (4321, 3, None, None)


def test_worker_died_error_of_an_unknown_signal() -> None:
    error = toolkit.WorkerDiedError(4321, -250)
    assert error.signal is None
    assert "signal 250" in str(error)
    assert pickle.loads(pickle.dumps(error)).exitcode == -250


def test_serialization_error_names_the_part_and_type() -> None:
    error = toolkit.SerializationError("keyword argument 'x'", "socket.socket", "TypeError: no")
    assert error.argument == "keyword argument 'x'"
    assert error.type == "socket.socket"
    assert "keyword argument 'x'" in str(error)
    assert "socket.socket" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.argument, copy.type, copy.reason) == (error.argument, error.type, error.reason)
    assert isinstance(copy, pickle.PicklingError)


def test_remote_traceback_str_is_the_traceback() -> None:
    text = "Traceback (most recent call last):\nValueError: x"
    error = toolkit.RemoteTraceback(text)
    assert str(error) == text
    assert str(pickle.loads(pickle.dumps(error))) == text


# --- playground uses the public surface only -----------------------------------------------------


def test_private_reference_scan_finds_private_names() -> None:
    assert _private_references("x = toolkit._executors._default_threads") == ["_executors"]
    assert _private_references("from toolkit import _bridge, run") == ["_bridge"]
    assert _private_references("from toolkit._core._errors import ToolkitError") == ["_core"]
    assert _private_references("print(toolkit.__version__, toolkit.run)") == []
    assert _private_references("import prompt_toolkit._x") == []


def test_playground_uses_no_private_toolkit_names() -> None:
    sources = sorted(PLAYGROUND.rglob("*.py"))
    assert sources, f"no sources found under {PLAYGROUND}"
    offenders = {
        str(path.relative_to(PLAYGROUND)): names
        for path in sources
        if (names := _private_references(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_init_type_checking_imports_match_the_lazy_table() -> None:
    # toolkit/__init__.py lists each public name twice: in the table that
    # loads it lazily (whence __all__) and in the imports type checkers read.
    import ast

    source = Path(toolkit.__file__).read_text()
    imported: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom):
                    for alias in stmt.names:
                        module = "." * stmt.level + (stmt.module or "")
                        imported[alias.asname or alias.name] = (
                            module if stmt.module else f".{alias.name}"
                        )
    assert imported == toolkit._LAZY
