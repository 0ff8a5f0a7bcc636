"""Manager: a server process holds a dict, list, namespace, value, array; a child changes them."""

from __future__ import annotations

import os
import time
from typing import Any

import toolkit
from playground.recipes._common import PACE, who


def change(d: Any, items: Any, ns: Any, v: Any, a: Any, pace: float) -> None:
    """A plain child: the stdlib proxies (.sync), as in the tutorial; each change a round trip."""
    print(f"{who()} changes the shared objects")
    d.sync[1] = "1"
    d.sync["2"] = 2
    d.sync[0.25] = None
    time.sleep(pace)
    items.sync.reverse()
    ns.sync.child = os.getpid()
    v.sync.value = 3.1415927
    a.sync[0] = -1


async def main(pace: float = PACE) -> None:
    async with toolkit.Manager() as m:
        print(f"manager server: pid {m.pid}")
        d = await m.dict()
        items = await m.list(range(10))
        ns = await m.Namespace(parent=os.getpid())
        v = await m.Value("d", 0.0)
        a = await m.Array("i", range(10))
        async with toolkit.Process(
            target=change,
            args=(d, items, ns, v, a, pace),
            name="recipe-manager-child",
            capture_output=True,
        ):
            pass  # leaving the block joins the child
        print("dict:", await d.copy())  # {1: '1', '2': 2, 0.25: None}
        print("list:", await items.copy())  # [9, 8, ..., 0]
        print("namespace:", sorted(await ns.copy()))  # ['child', 'parent']
        print("value:", await v.get(), "array:", await a.copy())
