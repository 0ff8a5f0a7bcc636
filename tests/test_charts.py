"""The benchmark charts and their data, from small synthetic results (no benchmark is run).

Speed is never asserted here: these check that every chart kind is drawn
from data alone, at its fixed size, the same bytes twice, and that the
JSON the benchmarks write reads back as written.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")  # the dev extra's; not needed to use the toolkit

from benchmarks import charts
from benchmarks._report import (
    FLOOR,
    LIBRARY,
    STDLIB,
    Report,
    peaks,
    quantiles,
    read_json,
    to_data,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENV: dict[str, Any] = {
    "date": "2026-01-01",
    "cpus": 2,
    "machine": "x86_64",
    "system": "Linux test",
    "implementation": "cpython",
    "versions": {"python": "3.11.0", "toolkit": "0.0.0"},
    "commit": "abc1234",
}


def _report() -> Report:
    """One report with every kind of chart data, as the benchmarks fill it."""
    report = Report(
        "synthetic",
        "synthetic: every chart kind (median of 1 round)",
        ["loop", "mechanism", "result", "toolkit is"],
        [["asyncio", "toolkit", "100/s", "1.00x"], ["asyncio", "stdlib", "50/s", "2.00x"]],
        series={"wakeups": {}, "stall": {}},
    )
    for offset, loop in enumerate(("asyncio", "uvloop")):
        report.ratio(loop, "vs the stdlib way", STDLIB, 2.0 + offset)
        report.ratio(loop, "vs the best library", LIBRARY, 150.0)
        report.ratio(loop, "wake-up p50 vs raw pipe byte", FLOOR, 0.7)
        report.ratio(loop, "not measured here", LIBRARY, float("nan"))  # charted as nothing
        report.series["wakeups"][loop] = {
            "toolkit Event.wait": [30.0 + i * 0.5 for i in range(200)],
            "raw pipe byte + add_reader": [20.0 + i * 0.3 for i in range(200)],
        }
        report.series["stall"][loop] = {
            "round": 2,
            "rounds": 3,
            "period_ms": 1.0,
            "points": [[float(t), 0.05 + (1.5 if t == 20 else 0.0)] for t in range(1, 60)],
        }
    return report


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _expected_size(kind: str) -> tuple[int, int]:
    width, height = charts.SIZES[kind]
    return round(width * charts.DPI), round(height * charts.DPI)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Path]]:
    """The synthetic data, written and read back, and its charts (drawn once: a second a set)."""
    tmp_path = tmp_path_factory.mktemp("charts")
    data_dir, chart_dir = tmp_path / "data", tmp_path / "charts"
    write_json(data_dir / "synthetic.json", to_data(_report(), ENV))
    return read_json(data_dir / "synthetic.json"), charts.draw_all(data_dir, chart_dir)


def test_every_chart_kind_is_drawn_at_its_fixed_size(
    drawn: tuple[dict[str, Any], list[Path]],
) -> None:
    _, written = drawn
    assert sorted(p.name for p in written) == [
        "synthetic-ratios.png",
        "synthetic-stall.png",
        "synthetic-wakeups.png",
    ]
    for kind in charts.KINDS:
        [path] = [p for p in written if p.name == f"synthetic-{kind}.png"]
        assert _png_size(path) == _expected_size(kind)


def test_charts_are_the_same_bytes_from_the_same_data(
    drawn: tuple[dict[str, Any], list[Path]], tmp_path: Path
) -> None:
    data, first = drawn
    again = charts.draw(data, tmp_path)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    for path in first:
        assert b"Software" not in path.read_bytes()  # no matplotlib version, no time


def test_a_chart_kind_the_data_no_longer_has_is_removed(tmp_path: Path) -> None:
    (tmp_path / "synthetic-stall.png").write_bytes(b"an old chart")
    report = _report()
    report.series = {}  # ratios only, as most benchmarks
    written = charts.draw(to_data(report, ENV), tmp_path)
    assert [p.name for p in written] == ["synthetic-ratios.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic-ratios.png"]


def test_no_data_for_a_chart_draws_nothing(tmp_path: Path) -> None:
    empty = Report("empty", "empty", ["loop"], [])
    assert charts.draw(to_data(empty, ENV), tmp_path) == []


def test_charts_command_draws_only_the_names_given(tmp_path: Path) -> None:
    data_dir, chart_dir = tmp_path / "data", tmp_path / "charts"
    for name in ("one", "two"):
        report = _report()
        report.name = name
        report.series = {}
        write_json(data_dir / f"{name}.json", to_data(report, ENV))
    charts.main(["--data", str(data_dir), "--charts", str(chart_dir), "two"])
    assert [p.name for p in chart_dir.iterdir()] == ["two-ratios.png"]
    with pytest.raises(SystemExit):
        charts.main(["--data", str(data_dir), "--charts", str(chart_dir), "three"])


def test_json_round_trips(tmp_path: Path) -> None:
    data = to_data(_report(), ENV)
    path = tmp_path / "data" / "synthetic.json"
    write_json(path, data)
    assert read_json(path) == data
    text = path.read_text(encoding="utf-8")
    json.loads(text)  # strict JSON: NaN became null
    assert "NaN" not in text
    nan_ratio = [r for r in data["ratios"] if r["label"] == "not measured here"]
    assert [r["value"] for r in nan_ratio] == [None, None]
    assert data["header"] == ["loop", "mechanism", "result", "toolkit is"]
    assert data["ratios"][0] == {
        "loop": "asyncio",
        "label": "vs the stdlib way",
        "kind": STDLIB,
        "value": 2.0,
    }


def test_report_prints_its_markdown_table() -> None:
    text = str(_report())
    assert text.startswith("### synthetic: every chart kind")
    assert "| asyncio | stdlib    | 50/s   | 2.00x      |" in text


def test_series_are_kept_small() -> None:
    samples = [float(i % 997) for i in range(100_000)]
    kept = quantiles(samples, 1_000)
    assert len(kept) == 1_000
    assert kept[0] == min(samples)
    assert kept[-1] == max(samples)
    assert kept == sorted(kept)
    assert quantiles([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]

    times = [float(t) for t in range(10_000)]
    gaps = [0.1] * 10_000
    gaps[4_321] = 9.0
    points = peaks(times, gaps, 500)
    assert len(points) <= 500
    assert [4_321.0, 9.0] in points  # the worst stall survives the downsampling
    assert math.isclose(max(p[1] for p in points), 9.0)


@pytest.mark.parametrize("module", ["benchmarks", "benchmarks.charts"])
def test_command_help(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"python -m {module}" in out.stdout
