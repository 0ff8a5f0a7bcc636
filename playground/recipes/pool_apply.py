"""Pool.apply: one call at a time, awaited (the blocking form of apply_async)."""

from __future__ import annotations

import time

import toolkit
from playground.recipes._common import PACE, who


def greet(i: int, pace: float) -> str:
    time.sleep(pace)
    return f"hello {i} from {who()}"


async def main(pace: float = PACE) -> None:
    async with toolkit.Pool(2, name="recipe-apply") as pool:
        for i in range(4):
            print(await pool.apply(greet, (i, pace)))
