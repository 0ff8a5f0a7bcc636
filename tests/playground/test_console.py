"""The interim playground console, driven as a user would: a real interpreter, real stdin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

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


def _outputs(stdout: str) -> list[str]:
    """What the session printed, without the prompts (input() writes them to stdout)."""
    text = stdout.replace(">>> ", "").replace("... ", "")
    return [line for line in text.splitlines() if line.strip() not in ("", ">>>", "...")]


def test_console_c_runs_top_level_await() -> None:
    result = _playground("-c", "print(await toolkit.to_thread(sum, [1, 2, 3]))")
    assert (result.returncode, result.stdout) == (0, "6\n"), result.stderr


def test_console_c_runs_on_uvloop() -> None:
    code = "print(type(asyncio.get_running_loop()).__module__)"
    result = _playground("--uvloop", "-c", code)
    assert result.stdout.startswith("uvloop"), result.stderr


def test_console_script_with_to_process_and_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            print(await toolkit.to_process(lambda: 6 * 7), sys.argv[1:])
            raise SystemExit(3)
            """
        )
    )
    result = _playground(str(script), "a", "b")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "42 ['a', 'b']\n"


def test_console_script_error_exits_1_with_a_traceback(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("await asyncio.sleep(0)\n1 / 0\n")
    result = _playground(str(script))
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr


def test_console_missing_script_is_a_clear_error(tmp_path: Path) -> None:
    result = _playground(str(tmp_path / "nope.py"))
    assert result.returncode == 2
    assert "cannot open" in result.stderr


def test_console_interactive_session_keeps_state_and_survives_errors() -> None:
    session = "\n".join(
        [
            "x = await toolkit.to_thread(pow, 2, 10)",
            "x + 1",
            "1 / 0",
            "import contextvars; v = contextvars.ContextVar('v'); _ = v.set(5)",
            "v.get()",
            "await toolkit.to_process(abs, -7)",
            "",
        ]
    )
    result = _playground(stdin=session)
    assert result.returncode == 0, result.stderr
    assert _outputs(result.stdout) == ["1025", "5", "7"]
    assert "ZeroDivisionError" in result.stderr


def test_console_ctrl_c_cancels_the_statement_not_the_session() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "playground"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write("print('sleeping'); await asyncio.sleep(30)\n")
        process.stdin.flush()
        assert _outputs(process.stdout.readline()) == ["sleeping"]
        process.send_signal(signal.SIGINT)
        process.stdin.write("print('alive')\n")
        process.stdin.close()
        assert _outputs(process.stdout.readline()) == ["alive"]
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        assert "KeyboardInterrupt" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("flag", ["--uvloop", "--no-uvloop"])
def test_console_exit_leaves_no_children(flag: str) -> None:
    session = "import os\nprint(await toolkit.to_process(os.getpid) != os.getpid())\n"
    result = _playground(flag, stdin=session)
    assert result.returncode == 0, result.stderr
    assert _outputs(result.stdout) == ["True"]
