"""Layer 1, the mechanisms: errors, checks, the loop bridge, pickling, start methods, guards.

Nothing here knows a toolkit object: every layer above may import from here,
and nothing here imports from a layer above. See docs/internals.md.
"""

__all__: list[str] = []  # a layer, not an API: import its modules
