"""Pool.map on a Dask cluster: the tutorial's pool example, its workers a cluster's.

The same call as pool_map; only the constructor changes. ``DaskPool(local=2)``
starts a two-worker cluster on this machine, bound to 127.0.0.1, and stops it
with the pool. ``dask("tcp://host:8786")`` at the prompt connects to a running
scheduler instead (docs/distributed.md).
"""

from __future__ import annotations

import time

import toolkit
from playground.recipes._common import PACE


def square(x: int, pace: float = PACE) -> int:
    time.sleep(pace)
    return x * x


async def main(pace: float = PACE) -> None:
    try:
        import distributed  # noqa: F401 - the extra this recipe needs
    except ImportError:
        print("this recipe needs Dask: pip install 'toolkit[dask]'")
        return
    async with toolkit.DaskPool(local=2, name="recipe-dask") as pool:
        results = await pool.starmap(square, [(x, pace) for x in range(12)])
        print("squares on the cluster:", results)
        for row in pool.workers:
            print(f"{row.name}: {row.address} on {row.host}, pid {row.pid}, {row.tasks_done} tasks")
