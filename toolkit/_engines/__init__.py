"""Layer 2, the engines: the workers a pool drives (a process and its child side, a thread).

Built on ``_core`` only. See docs/internals.md.
"""

__all__: list[str] = []  # a layer, not an API: import its modules
