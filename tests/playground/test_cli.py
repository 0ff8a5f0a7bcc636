"""The playground without a terminal: -c, a script, piped standard input (a real interpreter)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


def test_cli_c_runs_top_level_await() -> None:
    result = _playground("-c", "print(await toolkit.to_thread(sum, [1, 2, 3]))")
    assert (result.returncode, result.stdout) == (0, "6\n"), result.stderr


def test_cli_c_runs_on_uvloop() -> None:
    code = "print(type(asyncio.get_running_loop()).__module__)"
    result = _playground("--uvloop", "-c", code)
    assert result.stdout.startswith("uvloop"), result.stderr


def test_cli_script_with_to_process_and_exit_code(tmp_path: Path) -> None:
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


def test_cli_script_error_exits_1_with_a_traceback(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("await asyncio.sleep(0)\n1 / 0\n")
    result = _playground(str(script))
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr


def test_cli_missing_script_is_a_clear_error(tmp_path: Path) -> None:
    result = _playground(str(tmp_path / "nope.py"))
    assert result.returncode == 2
    assert "cannot open" in result.stderr


def test_cli_piped_stdin_runs_as_a_script_with_the_commands() -> None:
    session = "x = await toolkit.to_thread(pow, 2, 10)\nprint(x + 1)\nps()\n"
    result = _playground(stdin=session)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "1025"
    assert "no workers" in result.stdout


def test_cli_ctrl_c_cancels_the_program_with_status_130() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "playground", "-c", "print('sleeping'); await asyncio.sleep(30)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        assert process.stdout.readline() == "sleeping\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert "KeyboardInterrupt" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize("flag", ["--uvloop", "--no-uvloop"])
def test_cli_exit_leaves_no_children(flag: str) -> None:
    code = "import os, time; p = process(time.sleep, 60); print(p.is_alive(), p.pid != os.getpid())"
    result = _playground(flag, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True True\n"


def test_cli_playground_uses_only_public_toolkit_names() -> None:
    import playground

    root = Path(playground.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"toolkit\._(?!_)|from toolkit(\.\w+)* import .*\b_\w", line)
    ]
    assert offenders == []


def test_cli_banner_names_every_command() -> None:
    from playground._namespace import COMMANDS
    from playground._repl import BANNER

    assert [c for c in COMMANDS if f"{c}(" not in BANNER] == []


def test_cli_views_print_once_without_a_terminal() -> None:
    result = _playground("-c", "t = threadpool(1, name='solo'); await t.apply(abs, (-1,)); top()")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "KIND", "PID/TID", "STATE"]
    assert row.split()[:2] == ["solo-1", "thread"]


def test_cli_c_passes_every_later_argument_to_the_code_as_python_does() -> None:
    code = "import sys; print(sys.argv)"
    result = _playground("--history", os.devnull, "-c", code, "a", "--flag", "-x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['-c', 'a', '--flag', '-x']"


def test_cli_version_and_help_name_the_program_as_it_was_started() -> None:
    import toolkit

    result = _playground("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"toolkit {toolkit.__version__} playground, Python ")
    script = Path(sys.executable).with_name("toolkit-playground")
    if script.exists():
        helped = subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, timeout=60, env=_ENV
        )
        assert helped.stdout.startswith("usage: toolkit-playground "), helped.stdout
    assert _playground("--help").stdout.startswith("usage: python -m playground ")
