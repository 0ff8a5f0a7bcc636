"""The playground's real-terminal tests: one tmux server per test, on a private socket.

tmux is the one tool beyond Python and pip that ``make test`` needs (README,
set-up). A machine without it fails these tests, loudly and saying how to
install it, rather than skipping the only tests of the real terminal path
(raw mode, SIGINT, the fd relay, handing the terminal to pdb and help()).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psutil
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TMUX_MISSING = (
    "tmux is not installed, and the playground's real-terminal tests need it "
    "(the README's set-up): install it with your package manager "
    "(Debian/Ubuntu: sudo apt-get install tmux; Fedora: sudo dnf install tmux; "
    "macOS: brew install tmux), or run .ci/run, which installs it"
)


class Tmux:
    """One tmux server of our own (-S: its socket in the test's tmp_path), one window."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "pg", *keys)

    def line(self, text: str) -> None:
        self("send-keys", "-t", "pg", "-l", text)
        self.keys("Enter")

    def screen(self) -> list[str]:
        return self("capture-pane", "-p", "-t", "pg").splitlines()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                shown = "\n".join(lines)
                raise AssertionError(f"the pane never matched; it shows:\n{shown}")
            time.sleep(0.05)

    def wait_for_text(self, text: str, timeout: float = 20) -> list[str]:
        return self.wait_for(lambda lines: any(text in line for line in lines), timeout)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[[list[str]], Tmux]]:
    """start(args) runs ``python -m playground *args`` in a 110x32 tmux window.

    When the playground exits, the window shows ``EXITED:<status>``.
    """
    if sys.platform == "win32":
        pytest.skip("tmux does not run on Windows")
    if shutil.which("tmux") is None:
        pytest.fail(TMUX_MISSING)
    servers: list[Tmux] = []

    def start(args: list[str]) -> Tmux:
        server = Tmux(tmp_path / f"tmux-{len(servers)}.sock")
        servers.append(server)
        command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "playground", *args])
        env = f"TOOLKIT_PLAYGROUND_HISTORY={shlex.quote(str(tmp_path / 'history'))}"
        script = f"cd {shlex.quote(ROOT)} && env {env} {command}; echo EXITED:$?; sleep 60"
        server("new-session", "-d", "-s", "pg", "-x", "110", "-y", "32", script)
        return server

    yield start
    for server in servers:
        subprocess.run(["tmux", "-S", str(server.socket), "kill-server"], check=False, timeout=10)


def gone(pids: list[int]) -> bool:
    """Every pid has exited (a zombie counts: its parent has not reaped it yet)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True
