"""Value and Array: shared memory counters and arrays, updated by several processes."""

from __future__ import annotations

import time
from typing import Any

import toolkit
from playground.recipes._common import PACE


def work(counter: Any, squares: Any, i: int, pace: float) -> None:
    for _ in range(5):
        with counter.get_lock().sync:  # += reads then writes: hold the lock across both
            counter.value += 1
        time.sleep(pace / 5)
    squares[i] = i * i


async def main(pace: float = PACE) -> None:
    counter = toolkit.Value("i", 0)
    squares = toolkit.Array("i", 4)
    children = [
        toolkit.Process(
            target=work,
            args=(counter, squares, i, pace),
            name=f"recipe-shared-{i}",
            capture_output=True,
        )
        for i in range(4)
    ]
    for p in children:
        p.start()
    for p in children:
        await p.join()
    print("counter:", counter.value)  # 20
    print("squares:", list(squares))  # [0, 1, 4, 9]
