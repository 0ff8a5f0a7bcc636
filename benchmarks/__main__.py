"""python -m benchmarks [--quick] [NAME ...]: run the benchmarks, print Markdown tables."""

from __future__ import annotations

import argparse

from benchmarks import (
    bench_backends,
    bench_dask,
    bench_ipc,
    bench_managers,
    bench_map,
    bench_monitor,
    bench_pool,
    bench_to_process,
    bench_to_thread,
)
from benchmarks._util import machine

BENCHMARKS = {
    "to_thread": bench_to_thread.run,
    "to_process": bench_to_process.run,
    "map": bench_map.run,
    "ipc": bench_ipc.run,
    "pool": bench_pool.run,
    "managers": bench_managers.run,
    "backends": bench_backends.run,
    "dask": bench_dask.run,
    "monitor": bench_monitor.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument(
        "names", nargs="*", choices=[*BENCHMARKS, []], help="which ones (default: all)"
    )
    options = parser.parse_args()
    print(f"Machine: {machine()}\n")
    for name in options.names or BENCHMARKS:
        print(BENCHMARKS[name](quick=options.quick))


if __name__ == "__main__":
    main()
