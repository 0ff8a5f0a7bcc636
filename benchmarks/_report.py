"""What a benchmark returns: its Markdown table, and the same results as data for the charts.

``run(quick)`` returns a :class:`Report`; ``str(report)`` is the Markdown
table printed as before, and :func:`write_json` keeps the rest in
docs/benchmarks/data/<name>.json, from which benchmarks/charts.py draws.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._util import table

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "docs" / "benchmarks" / "data"
SCHEMA = 1
# The most points a series keeps in the JSON: enough for a chart, small in git.
MAX_POINTS = 2_000
# Packages whose versions explain the figures (the contenders and the loop).
PACKAGES = (
    "toolkit",
    "uvloop",
    "anyio",
    "aioprocessing",
    "aiomultiprocess",
    "distributed",
    "psutil",
)

# Ratio kinds: what the toolkit is compared with (the chart names it beside the label).
STDLIB = "stdlib"
LIBRARY = "library"
FLOOR = "floor"
OTHER = "other"


@dataclass
class Ratio:
    """One "toolkit is N x" figure, normalized so that above 1.0 means the toolkit does better.

    For times (lower is better) ``value`` is theirs over ours, so a table's
    "1.08x the time" is charted as 0.93x: every bar reads the same way.
    """

    loop: str
    label: str
    kind: str
    value: float


@dataclass
class Report:
    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    ratios: list[Ratio] = field(default_factory=list)
    # Raw measurements by loop (medians, samples): the record behind the rows.
    figures: dict[str, Any] = field(default_factory=dict)
    # Series for charts: "wakeups" (latency samples) and "stall" (gaps over time).
    series: dict[str, Any] = field(default_factory=dict)
    quick: bool = False

    def __str__(self) -> str:
        return table(self.title, self.header, self.rows)

    def ratio(self, loop: str, label: str, kind: str, value: float) -> None:
        self.ratios.append(Ratio(loop, label, kind, value))


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _commit() -> str | None:
    """The checkout the figures come from (git describe --dirty), if git says."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "implementation": sys.implementation.name,
        "versions": versions(),
        "commit": _commit(),
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: a figure that could not be measured becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_data(report: Report, env: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "name": report.name,
        "title": report.title,
        "quick": report.quick,
        **(env if env is not None else environment()),
        "header": report.header,
        "rows": report.rows,
        "ratios": [vars(r) for r in report.ratios],
        "figures": report.figures,
        "series": report.series,
    }
    finite: dict[str, Any] = _finite(data)
    return finite


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Sorted keys and a fixed indent: a rerun's diff shows only what changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a file


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# --- keeping series small ---------------------------------------------------------------------


def quantiles(samples: list[float], points: int = MAX_POINTS) -> list[float]:
    """At most ``points`` values that draw the same distribution (evenly spaced quantiles)."""
    ordered = sorted(samples)
    if len(ordered) <= points:
        return ordered
    last = len(ordered) - 1
    return [ordered[round(i * last / (points - 1))] for i in range(points)]


def peaks(times: list[float], values: list[float], points: int = MAX_POINTS) -> list[list[float]]:
    """At most ``points`` [time, value] pairs: the largest value of each bucket of time.

    The largest, not the mean: a stall chart must keep its worst stalls.
    """
    pairs: list[tuple[float, float]] = list(zip(times, values, strict=True))
    if len(pairs) <= points:
        return [[t, v] for t, v in pairs]
    size = math.ceil(len(pairs) / points)
    kept: list[list[float]] = []
    for start in range(0, len(pairs), size):
        t, v = max(pairs[start : start + size], key=lambda pair: pair[1])
        kept.append([t, v])
    return kept


def rounded(values: list[float], digits: int = 4) -> list[float]:
    """Fewer digits in the JSON (microseconds to a tenth of a nanosecond are noise)."""
    return [round(v, digits) for v in values]
