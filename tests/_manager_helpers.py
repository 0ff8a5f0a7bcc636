"""Picklable, top-level functions for manager tests: children and registered types."""

from __future__ import annotations

import os
import sys
from typing import Any


def tutorial_child(d: Any, l: Any, n: Any, v: Any, a: Any) -> None:  # noqa: E741 - the tutorial's names
    """The tutorial's f(d, l), with the stdlib proxies (.sync), in a plain child."""
    d.sync[1] = "1"
    d.sync["2"] = 2
    d.sync[0.25] = None
    l.sync.reverse()
    l.sync.append("child")
    n.sync.child = os.getpid()
    v.sync.value = 3.1415927
    a.sync[0] = -1


def tutorial_child_async(d: Any, l: Any, n: Any, v: Any, a: Any) -> None:  # noqa: E741
    """The same in a child with its own event loop, awaiting the proxies it received."""
    import toolkit

    async def main() -> None:
        await d.setitem(1, "1")
        await d.update({"2": 2, 0.25: None})
        await l.reverse()
        await l.append("child")
        await n.setattr("child", os.getpid())
        await v.set(3.1415927)
        await a.setitem(0, -1)

    toolkit.run(main())


def produce_sync(q: Any, count: int) -> None:
    """A plain child putting 0..count-1 on a managed queue (stdlib proxy)."""
    for i in range(count):
        q.sync.put(i)


def connect_and_use(address: Any, authkey: bytes, out: Any) -> None:
    """Another process: connect to a toolkit manager by address and key, report what it saw."""
    import toolkit

    async def main() -> Any:
        try:
            manager = await toolkit.Manager.connect(address, authkey=authkey)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            return type(exc).__name__
        async with manager:
            d = await manager.dict(x=41)
            await d.setitem("x", await d.get("x") + 1)
            return await d.copy()

    out.sync.send(toolkit.run(main()))
    out.sync.close()


def stdlib_client(address: Any, authkey: bytes, shared: Any, out: Any) -> None:
    """A plain multiprocessing client: SyncManager.connect(), its own list, and a shared dict."""
    from multiprocessing.managers import SyncManager

    manager = SyncManager(address=address, authkey=authkey)
    manager.connect()
    items = manager.list(range(3))
    items.append(3)
    shared["from stdlib"] = list(items)
    out.sync.send(shared["from toolkit"])
    out.sync.close()


class Counter:
    """A registered type for BaseManager tests."""

    def __init__(self, start: int = 0) -> None:
        self.count = start

    def add(self, n: int = 1) -> int:
        self.count += n
        return self.count

    def get(self) -> int:
        return self.count

    def fail(self) -> None:
        raise LookupError("nothing here")

    def slow(self, seconds: float) -> str:
        import time

        time.sleep(seconds)
        return "slow"


def exit_now() -> None:
    sys.exit(3)


def fail_to_initialize(message: str) -> None:
    raise LookupError(message)


def make_counter_proxy_type() -> Any:
    """A toolkit proxy type with methods of its own (imported lazily: the server needs none)."""
    import toolkit

    class CounterProxy(toolkit.BaseProxy):
        _exposed_ = ("add", "get")

        async def add(self, n: int = 1) -> int:
            return await self._callmethod("add", (n,))  # type: ignore[no-any-return]

        async def twice(self) -> int:
            await self.add()
            return await self.add()

    return CounterProxy


def fork_child_awaits(d: Any, q: Any) -> None:
    """A fork child: inherited proxies, awaited from its own loop on its own connections."""
    import toolkit

    async def main() -> None:
        for i in range(50):
            await d.setitem(("child", i), i)
        await q.put("child done")

    toolkit.run(main())
