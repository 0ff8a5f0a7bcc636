"""Without tmux the real-terminal tests fail, not skip, saying how to install it (issue 14, 8)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.playground.conftest import ROOT

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.skipif(sys.platform == "win32", reason="tmux does not run on Windows")
def test_tmux_tests_fail_saying_how_to_install_tmux_when_it_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "bin"  # a PATH where no tmux can be found
    empty.mkdir()
    test = "tests/playground/test_tmux.py::test_tmux_ctrl_c_keeps_the_session_and_the_workers"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", test],
        cwd=ROOT,
        env={**os.environ, "PATH": str(empty)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    # pytest.fail in the fixture: an error at set-up, exit status 1 (a skip would exit 0).
    assert result.returncode == 1, output
    assert re.search(r"\b1 (failed|error)\b", output), output
    assert "tmux is not installed" in output
    assert "sudo apt-get install tmux" in output
    assert "brew install tmux" in output
