"""python -m benchmarks [--quick] [--no-charts] [NAME ...]: run the benchmarks.

Each benchmark prints its Markdown table, and its results are written as
docs/benchmarks/data/<name>.json; then the charts of the benchmarks run are
drawn again from that data (benchmarks/charts.py) into docs/benchmarks/charts/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

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
from benchmarks._report import DATA_DIR, environment, to_data, write_json
from benchmarks._util import machine

if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks._report import Report

BENCHMARKS: dict[str, Callable[..., Report]] = {
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the comparative benchmarks (docs/benchmarks.md): print each one's "
        "Markdown table, write its results as JSON and draw its charts.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument(
        "--no-charts", action="store_true", help="write the JSON, do not draw the charts"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"where the JSON goes (default: {DATA_DIR.relative_to(DATA_DIR.parents[2])}; "
        "with --quick nothing is written unless this is given, so that a smoke run "
        "never replaces the record)",
    )
    parser.add_argument(
        "--charts",
        type=Path,
        default=None,
        help="where the PNG charts go (default: charts/ beside the data directory)",
    )
    parser.add_argument(
        "names", nargs="*", choices=[*BENCHMARKS, []], help="which ones (default: all)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    options = _parser().parse_args(argv)
    data_dir: Path | None = options.data
    if data_dir is None and not options.quick:
        data_dir = DATA_DIR
    names = options.names or list(BENCHMARKS)
    print(f"Machine: {machine()}\n")
    env = environment()
    started = time.perf_counter()
    for name in names:
        report = BENCHMARKS[name](quick=options.quick)
        print(report)
        if data_dir is not None:
            # At once: a later benchmark's failure does not lose this one's figures.
            write_json(data_dir / f"{name}.json", to_data(report, env))
    print(f"Benchmarks took {time.perf_counter() - started:.0f} s.")
    if data_dir is None:
        print("Quick run: no data written (pass --data DIR to keep it).")
        return
    print(f"Data: {data_dir}/")
    if not options.no_charts:
        from benchmarks import charts  # matplotlib only when charts are drawn

        chart_dir = options.charts if options.charts is not None else data_dir.parent / "charts"
        for path in charts.draw_all(data_dir, chart_dir, names):
            print(f"Chart: {path}")


if __name__ == "__main__":
    main()
