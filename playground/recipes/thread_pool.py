"""A thread pool (multiprocessing.dummy's Pool): I/O-bound calls on threads, awaited."""

from __future__ import annotations

import threading
import time

import toolkit
from playground.recipes._common import PACE


def fetch(url: str, pace: float) -> str:
    time.sleep(pace)  # pretend network I/O: threads overlap here
    return f"{url} fetched by {threading.current_thread().name}"


async def main(pace: float = PACE) -> None:
    urls = [f"https://example.invalid/{i}" for i in range(8)]
    started = time.perf_counter()
    async with toolkit.ThreadPool(4, name="recipe-threads") as pool:
        for line in await pool.starmap(fetch, [(u, pace) for u in urls]):
            print(line)
    print(f"8 calls of {pace}s on 4 threads took {time.perf_counter() - started:.2f}s")
