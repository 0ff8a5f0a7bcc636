"""The package's layers: imports point down only, and the worker side never loads asyncio.

    public      toolkit/__init__.py, __main__.py, inspect.py, monitor.py
    monitor     _monitor/ (the monitor's server, client and metrics)
    facades     _executors.py, _map.py, _pool.py, _dask.py, _loop.py
    managers    _managers/
    objects     _objects/
    engines     _engines/
    core        _core/

A module may import from its own layer and the layers below it, never above,
lazily (inside a function) included. docs/internals.md draws the same picture.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "toolkit"

LAYERS = ["_core", "_engines", "_objects", "_managers", "facades", "_monitor", "public"]
FACADES = {"_executors", "_map", "_pool", "_dask", "_loop"}
PUBLIC = {"__init__", "__main__", "inspect", "monitor"}

# Modules that run in worker processes (or the forkserver) before any task: a
# worker that imports asyncio pays ~20 ms more to start.
WORKER_SIDE = [
    "toolkit._engines._worker",
    "toolkit._core._guard",
    "toolkit._core._forkserver_guard",
    "toolkit._core._serialize",
    "toolkit._core._cpython",  # _guard.py reads the forkserver's state through it
    "toolkit._core._backend",  # the worker and _guard.py ask which backend runs
]


def _module_name(path: Path) -> str:
    parts = ["toolkit", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return LAYERS.index("public")
    head = parts[1]
    if head in LAYERS:
        return LAYERS.index(head)
    if head in FACADES:
        return LAYERS.index("facades")
    if head in PUBLIC:
        return LAYERS.index("public")
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py")


def _imports(path: Path) -> list[str]:
    """Every toolkit module path imports, resolved to absolute names."""
    module = _module_name(path)
    # "toolkit._core._bridge" is in "toolkit._core"; "toolkit._core.__init__" too.
    package = module.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "toolkit" or target.startswith("toolkit."):
                if node.module is None or target == "toolkit":
                    found += [f"{target}.{alias.name}" for alias in node.names]
                else:
                    found.append(target)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("toolkit.")]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    mine = _layer(module)
    upward = [target for target in _imports(path) if _layer(target) > mine]
    assert upward == [], f"{module} ({LAYERS[mine]}) imports from a layer above: {upward}"


def test_layers_every_module_has_a_layer() -> None:
    for path in _modules():
        _layer(_module_name(path))


@pytest.mark.parametrize("module", WORKER_SIDE)
def test_layers_worker_side_never_imports_asyncio(module: str) -> None:
    code = f"import sys, {module}; print('asyncio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False", f"importing {module} loads asyncio"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_every_module_lists_what_it_offers(path: Path) -> None:
    """__all__ holds every public name a module defines, and nothing it lacks (no drift)."""
    if path.name == "__init__.py" and path.parent == PACKAGE:
        return  # the public surface: derived from its lazy table (tests/test_public_api.py)
    if path.name == "_forkserver_guard.py":
        return  # imported for its effect in the forkserver; it offers nothing
    tree = ast.parse(path.read_text(), str(path))
    listed: list[str] | None = None
    defined: set[str] = set()
    aliases: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    if target.id == "__all__" and node.value is not None:
                        listed = list(ast.literal_eval(node.value))
                    else:
                        defined.add(target.id)
                        if isinstance(node.value, ast.Attribute):
                            aliases.add(target.id)  # another module's name, kept under ours
    assert listed is not None, f"{path.name} has no __all__"
    assert set(listed) <= defined | _imported_names(tree), f"listed, not defined: {listed}"
    public = {
        name
        for name in defined - aliases
        if not name.startswith("_") and not name.isupper() and name not in {"T", "R", "P"}
    }
    assert public <= set(listed), f"defined, not listed: {sorted(public - set(listed))}"


def _imported_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names |= {alias.asname or alias.name for alias in node.names}
    return names
