"""concurrent.futures made awaitable: submit, map, as_completed and wait."""

from __future__ import annotations

import concurrent.futures
import time

import toolkit
from playground.recipes._common import PACE


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def main(pace: float = PACE) -> None:
    with concurrent.futures.ThreadPoolExecutor(5) as threads:
        ex = toolkit.AsyncExecutor(threads)
        print("submit:", await ex.submit(nap, pace))
        print("map:", [r async for r in ex.map(nap, [pace, pace / 2, 0])])
        futures = [ex.submit(nap, pace * n / 3) for n in (3, 1, 2)]
        async for fut in ex.as_completed(futures):
            print("as_completed:", await fut)
        futures = [ex.submit(nap, pace + 0.2), ex.submit(nap, 0)]  # one slow, one at once
        done, pending = await ex.wait(futures, return_when=toolkit.FIRST_COMPLETED)
        print(f"wait(FIRST_COMPLETED): {len(done)} done, {len(pending)} pending")
        await ex.wait(pending)
