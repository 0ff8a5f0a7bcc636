"""Runnable async recipes: every example of the multiprocessing tutorial, made awaitable.

Start one from the prompt with ``recipe("pool_map")`` (a background task you can
watch in ``top()``) or run it to the end with ``await recipes.get("pool_map")()``.
Each recipe module has ``async def main()`` and prints what it does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

# name -> one line saying what it shows; the module is playground.recipes.<name>.
ALL: dict[str, str] = {}


def get(name: str) -> Callable[[], Coroutine[Any, Any, None]]:
    """Return the recipe's main() coroutine function."""
    if name not in ALL:
        raise LookupError(f"no recipe {name!r}; recipes: {', '.join(ALL)}")
    module = importlib.import_module(f"{__name__}.{name}")
    main: Callable[[], Coroutine[Any, Any, None]] = module.main
    return main


def show() -> None:
    """Print the recipes, one per line."""
    for name, what in ALL.items():
        print(f"{name:<20} {what}")
