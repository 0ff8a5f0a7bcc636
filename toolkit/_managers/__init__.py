"""Layer 4, managers: the server process, its connections, and the awaitable proxies.

Built on the layers below. See docs/internals.md.
"""
