"""Draw the benchmarks' charts from their data: ``python -m benchmarks.charts [NAME ...]``.

Reads docs/benchmarks/data/<name>.json (written by ``python -m benchmarks``)
and writes docs/benchmarks/charts/<name>-<kind>.png, where kind is

* ``ratios``: every "toolkit is N x" figure of the benchmark, per loop, as
  horizontal bars from a 1.0x line (log scale: 0.5x and 2x are as far apart);
* ``wakeups``: the distribution (CDF) of the wake-up latencies, per
  contender, one panel per loop;
* ``stall``: the event loop's stalls over time during a map, one panel per loop.

The charts are made from the data alone, so they are never edited by hand:
rerun this after editing nothing but the data. Output is deterministic for
the same data and matplotlib: fixed size and dpi, the bundled DejaVu font,
no timestamp or software name in the PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, whatever the environment says

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from benchmarks._report import DATA_DIR, read_json

if TYPE_CHECKING:
    from collections.abc import Iterable

    from matplotlib.axes import Axes

CHART_DIR = DATA_DIR.parent / "charts"
DPI = 100
# Inches at DPI: every chart of a kind has the same size in pixels, whatever its data.
SIZES = {"ratios": (11.0, 8.0), "wakeups": (11.0, 5.5), "stall": (11.0, 6.0)}
LOOP_COLORS = {"asyncio": "#4c72b0", "uvloop": "#dd8452"}
OTHER_COLORS = ("#55a868", "#c44e52", "#8172b3", "#937860")
KIND_NAMES = {
    "stdlib": "stdlib",
    "library": "existing library",
    "floor": "floor",
    "other": "other",
}
STYLE: dict[Any, Any] = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: nothing looked up or fetched
    "font.size": 10,
    "svg.hashsalt": "toolkit-benchmarks",  # fixed ids, should anyone save an SVG
    "axes.grid": True,
    "grid.alpha": 0.3,
}
# No "Software" (matplotlib's version) and no creation time: same data, same bytes.
METADATA: dict[str, str | None] = {"Software": None}


def _footer(data: dict[str, Any]) -> str:
    versions = data.get("versions", {})
    parts = [
        str(data.get("date", "")),
        f"{data.get('cpus')} CPUs, {data.get('machine', '')}, {data.get('system', '')}",
        f"Python {versions.get('python')}",
        f"toolkit {versions.get('toolkit')}",
    ]
    if data.get("commit"):
        parts.append(f"at {data['commit']}")
    if data.get("quick"):
        parts.append("QUICK RUN (fewer rounds)")
    return ", ".join(p for p in parts if p) + f"; data: benchmarks/data/{data['name']}.json"


def _figure(kind: str) -> Figure:
    width, height = SIZES[kind]
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, metadata=METADATA)
    return path


def _times_x(value: float, _position: object) -> str:
    return f"{value:g}x"


def _ratio_text(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


# --- (a) ratios ---------------------------------------------------------------------------------


def _ratio_label(ratio: dict[str, Any]) -> str:
    return f"{ratio['label']}  [{KIND_NAMES.get(ratio['kind'], ratio['kind'])}]"


def _draw_ratios(data: dict[str, Any]) -> Figure | None:
    ratios = [r for r in data.get("ratios", []) if r.get("value") is not None and r["value"] > 0]
    if not ratios:
        return None
    labels = list(dict.fromkeys(_ratio_label(r) for r in ratios))
    loops = list(dict.fromkeys(r["loop"] for r in ratios))
    figure = _figure("ratios")
    ax = figure.add_subplot()
    height = 0.8 / len(loops)
    values = [r["value"] for r in ratios]
    for index, loop in enumerate(loops):
        mine = [r for r in ratios if r["loop"] == loop]
        ys = [labels.index(_ratio_label(r)) - 0.4 + height * (index + 0.5) for r in mine]
        widths = [r["value"] - 1.0 for r in mine]
        color = LOOP_COLORS.get(loop, OTHER_COLORS[index % len(OTHER_COLORS)])
        ax.barh(ys, widths, height=height * 0.9, left=1.0, color=color, label=loop)
        for y, r in zip(ys, mine, strict=True):
            value = r["value"]
            ax.text(
                value * (1.03 if value >= 1 else 0.97),
                y,
                _ratio_text(value),
                va="center",
                ha="left" if value >= 1 else "right",
                fontsize=8,
            )
    ax.axvline(1.0, color="black", linewidth=1.2)
    ax.set_xscale("log")
    low = min([*values, 1.0]) / 1.6
    high = max([*values, 1.0]) * 1.8
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_times_x))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # the first figure on top, as in the table
    ax.grid(False, axis="y")
    ax.set_xlabel(
        "toolkit is N x the other (log scale); above 1.0x the toolkit does better\n"
        "rates: ours / theirs; times and latencies: theirs / ours"
    )
    ax.set_title(data["title"], fontsize=10)
    ax.legend(title="loop", loc="lower right", fontsize=9)
    figure.suptitle(f"{data['name']}: the toolkit against the others", fontweight="bold")
    figure.supxlabel(_footer(data), fontsize=7, color="#555555")
    return figure


# --- (b) wake-up latency distributions ------------------------------------------------------------


def _p50_p99(ordered: list[float]) -> tuple[float, float]:
    """As bench_ipc computes them, so that the legend matches the table."""
    return ordered[len(ordered) // 2], ordered[int(0.99 * (len(ordered) - 1))]


def _draw_wakeups(data: dict[str, Any]) -> Figure | None:
    by_loop: dict[str, dict[str, list[float]]] = data.get("series", {}).get("wakeups", {})
    by_loop = {loop: s for loop, s in by_loop.items() if any(s.values())}
    if not by_loop:
        return None
    figure = _figure("wakeups")
    axes = figure.subplots(1, len(by_loop), sharex=True, sharey=True, squeeze=False)[0]
    everything = [v for series in by_loop.values() for vs in series.values() for v in vs if v > 0]
    low, high = min(everything), max(everything)
    for ax, (loop, series) in zip(axes, by_loop.items(), strict=True):
        _cdfs(ax, series)
        ax.set_title(loop)
        ax.set_xscale("log")
        ax.set_xlim(low / 1.3, high * 1.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.set_xlabel("wake-up latency, us (log scale)")
        ax.set_ylim(0, 1.0)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("fraction of wake-ups at most this long")
    figure.suptitle(
        f"{data['name']}: wake-up latency across processes, a child sets, notifies or puts "
        "(dotted: p50 and p99)",
        fontweight="bold",
    )
    figure.supxlabel(_footer(data), fontsize=7, color="#555555")
    return figure


def _cdfs(ax: Axes, series: dict[str, list[float]]) -> None:
    colors = iter(OTHER_COLORS + tuple(LOOP_COLORS.values()))
    for label, samples in series.items():
        if not samples:
            continue
        ordered = sorted(samples)
        n = len(ordered)
        p50, p99 = _p50_p99(ordered)
        floor = label.startswith("raw")
        ax.step(
            ordered,
            [(i + 1) / n for i in range(n)],
            where="post",
            color="black" if floor else next(colors),
            linestyle="--" if floor else "-",
            linewidth=1.4,
            label=f"{label}: p50 {p50:.0f} us, p99 {p99:.0f} us (n={n})",
        )
    for level in (0.5, 0.99):
        ax.axhline(level, color="#888888", linestyle=":", linewidth=0.8)


# --- (c) loop stall over time ---------------------------------------------------------------------


def _draw_stall(data: dict[str, Any]) -> Figure | None:
    by_loop: dict[str, dict[str, Any]] = data.get("series", {}).get("stall", {})
    by_loop = {loop: s for loop, s in by_loop.items() if s.get("points")}
    if not by_loop:
        return None
    figure = _figure("stall")
    axes = figure.subplots(len(by_loop), 1, sharey=True, squeeze=False)[:, 0]
    worst = max(p[1] for s in by_loop.values() for p in s["points"])
    for index, (ax, (loop, stall)) in enumerate(zip(axes, by_loop.items(), strict=True)):
        times = [p[0] for p in stall["points"]]
        gaps = [max(p[1], 0.0) for p in stall["points"]]  # a tick early by a hair is no stall
        color = LOOP_COLORS.get(loop, OTHER_COLORS[index % len(OTHER_COLORS)])
        ax.vlines(times, 0, gaps, color=color, linewidth=1.0)
        ax.plot(times, gaps, ".", color=color, markersize=3)
        top = max(range(len(gaps)), key=gaps.__getitem__)
        ax.annotate(
            f"worst {gaps[top]:.2f} ms",
            (times[top], gaps[top]),
            textcoords="offset points",
            xytext=(6, -4),
            fontsize=8,
        )
        ax.set_title(
            f"{loop}: round {stall['round']} of {stall['rounds']} (the one with the worst "
            f"stall), {len(times)} ticks",
            fontsize=10,
        )
        ax.set_ylim(0, max(worst * 1.25, 0.1))
        ax.set_xlim(0, max(times) * 1.02 if times else 1)
        ax.set_ylabel(f"stall beyond the\n{stall['period_ms']:g} ms tick, ms")
    axes[-1].set_xlabel("time since the map started, ms")
    figure.suptitle(
        f"{data['name']}: the event loop's stalls during the toolkit's map "
        "(a 1 ms ticker on the loop)",
        fontweight="bold",
    )
    figure.supxlabel(_footer(data), fontsize=7, color="#555555")
    return figure


KINDS = {"ratios": _draw_ratios, "wakeups": _draw_wakeups, "stall": _draw_stall}


def draw(data: dict[str, Any], chart_dir: Path) -> list[Path]:
    """Every chart one benchmark's data has; a kind it no longer has loses its old file."""
    written = []
    with matplotlib.rc_context(STYLE):
        for kind, drawer in KINDS.items():
            path = chart_dir / f"{data['name']}-{kind}.png"
            figure = drawer(data)
            if figure is None:
                path.unlink(missing_ok=True)
                continue
            written.append(_save(figure, path))
    return written


def draw_all(
    data_dir: Path = DATA_DIR, chart_dir: Path = CHART_DIR, names: Iterable[str] | None = None
) -> list[Path]:
    """Draw the charts of these benchmarks (default: every JSON in data_dir)."""
    wanted = set(names) if names else None
    written = []
    for path in sorted(data_dir.glob("*.json")):
        if wanted is not None and path.stem not in wanted:
            continue
        written += draw(read_json(path), chart_dir)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.charts",
        description="Draw the benchmark charts (PNG) from their JSON data, without running them.",
    )
    parser.add_argument("names", nargs="*", help="which benchmarks (default: every JSON)")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="where the JSON is")
    parser.add_argument("--charts", type=Path, default=CHART_DIR, help="where the PNGs go")
    options = parser.parse_args(argv)
    missing = [n for n in options.names if not (options.data / f"{n}.json").exists()]
    if missing:
        parser.error(f"no data for {', '.join(missing)} in {options.data}")
    for path in draw_all(options.data, options.charts, options.names):
        print(f"Chart: {path}")


if __name__ == "__main__":
    main()
