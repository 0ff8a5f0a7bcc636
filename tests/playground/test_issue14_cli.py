"""Issue 14, item 3: a script's tracebacks name the script and its lines; -c code is <string>."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _playground(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=_ENV,
        check=False,
    )


def test_cli_script_traceback_names_the_script_and_its_lines(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import asyncio\n"
        "\n"
        "def fail():\n"
        "    raise ValueError('from the script')\n"
        "\n"
        "await asyncio.sleep(0)\n"
        "fail()\n"
    )
    result = _playground(str(script))
    assert result.returncode == 1
    assert f'File "{script}", line 7, in <module>' in result.stderr, result.stderr
    assert f'File "{script}", line 4, in fail' in result.stderr, result.stderr
    assert "raise ValueError('from the script')" in result.stderr  # the line itself, from the file
    assert "<playground-" not in result.stderr


def test_cli_script_last_expression_keeps_its_line(tmp_path: Path) -> None:
    # The final expression is compiled apart (its value is kept): same file, same line.
    script = tmp_path / "last.py"
    script.write_text("x = 1\n\n\n1 / (x - 1)\n")
    result = _playground(str(script))
    assert f'File "{script}", line 4, in <module>' in result.stderr, result.stderr


def test_cli_c_and_stdin_name_their_code_as_python_does() -> None:
    result = _playground("-c", "x = 1\n1 / 0")
    assert 'File "<string>", line 2, in <module>' in result.stderr, result.stderr
    result = _playground(stdin="x = 1\n\n1 / 0\n")
    assert 'File "<stdin>", line 3, in <module>' in result.stderr, result.stderr
