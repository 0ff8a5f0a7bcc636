"""Layer 3, the awaitable multiprocessing objects: Process, Connection, queues, locks, values.

Built on ``_core`` and ``_engines``. See docs/internals.md.
"""

__all__: list[str] = []  # a layer, not an API: import its modules
