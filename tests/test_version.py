"""One version: the package metadata, toolkit.__version__, python -m toolkit, the playground's
--version and the newest release in CHANGELOG.md all say the same."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import toolkit
from toolkit._core._version import __version__

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    ).stdout


def test_every_place_says_the_same_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[a-z]+\d+)?", __version__)
    assert toolkit.__version__ == __version__
    assert importlib.metadata.version("toolkit") == __version__
    (line,) = [ln for ln in _run("-m", "toolkit").splitlines() if ln.startswith("toolkit ")]
    assert line.split() == ["toolkit", __version__]
    assert _run("-m", "playground", "--version").startswith(f"toolkit {__version__} playground")


def test_the_changelog_names_the_version_as_its_newest_release() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d[^\]]*)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)
    assert releases, "CHANGELOG.md has no release heading such as '## [0.1.0] - 2026-12-03'"
    assert releases[0][0] == __version__
    # Keep a Changelog: unreleased changes on top, under their own heading.
    headings = re.findall(r"^## (.*)$", text, re.MULTILINE)
    assert headings[0] == "[Unreleased]"
