"""Every Python example in docs/ runs, as a user would run it: a script in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in [DOCS.parent / "README.md", *sorted(DOCS.rglob("*.md"))]:
        name = page.relative_to(DOCS).as_posix() if page.is_relative_to(DOCS) else page.name
        for number, block in enumerate(_BLOCK.findall(page.read_text(encoding="utf-8"))):
            found.append((f"{name}#{number}", block))
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("name", "source"), _examples(), ids=[n for n, _ in _examples()])
def test_docs_example_runs(name: str, source: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-X", "dev", str(script)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
