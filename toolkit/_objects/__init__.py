"""Layer 3, the awaitable multiprocessing objects: Process, Connection, queues, locks, values.

Built on ``_core`` and ``_engines``. See docs/internals.md.
"""
