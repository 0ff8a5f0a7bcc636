"""What the contract suites (tests/test_contract_*.py) share: a manager server, sync-or-async calls.

A contract suite runs the same tests against every kind of an object (every
lock-like, every queue-like): the toolkit's own objects and a manager's
proxies. They differ in small ways this module smooths over: a proxy's
``release()`` and ``get_nowait()`` are coroutines, the toolkit object's are
plain calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import toolkit

if TYPE_CHECKING:
    from collections.abc import Iterator


async def settle(result: Any) -> Any:
    """The value of a call that is a plain call on some kinds and a coroutine on others."""
    if inspect.isawaitable(result):
        return await result
    return result


@dataclass(frozen=True)
class ManagerServer:
    """A manager server shared by a module's tests; each test connects to it on its own loop."""

    address: Any
    authkey: bytes

    async def connect(self) -> toolkit.Manager:
        """A manager of this loop, connected to the server (``shutdown()`` disconnects it)."""
        return await toolkit.Manager.connect(self.address, authkey=self.authkey)


@contextlib.contextmanager
def serving_manager() -> Iterator[ManagerServer]:
    """Start a toolkit.Manager server for many tests; stop it at the end.

    pytest-asyncio gives every test a loop of its own (asyncio or uvloop), and
    a manager's connections belong to the loop that opened them. So the
    server is started (and later shut down) by a loop of its own, idle
    between the two, and each test connects to it with ``connect()``: one
    server process for the whole module, not one per test.
    """
    runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
    manager = toolkit.Manager()
    try:
        runner.run(manager.start())
        yield ManagerServer(manager.address, bytes(multiprocessing.current_process().authkey))
    finally:
        try:
            runner.run(manager.shutdown())
        finally:
            runner.close()
