"""Layer 4, managers: the server process, its connections, and the awaitable proxies.

Built on the layers below. See docs/internals.md.
"""

__all__: list[str] = []  # a layer, not an API: import its modules
