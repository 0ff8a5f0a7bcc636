"""Pool.map: one function over many inputs, spread over the pool's workers."""

from __future__ import annotations

import time

import toolkit
from playground.recipes._common import PACE


def square(x: int, pace: float = PACE) -> int:
    time.sleep(pace)
    return x * x


async def main(pace: float = PACE) -> None:
    async with toolkit.Pool(3, name="recipe-map") as pool:
        results = await pool.starmap(square, [(x, pace) for x in range(12)])
        print("squares:", results)
