"""The monitor behind ``toolkit.monitor``: its wire format, its server and its client.

_protocol.py   framing, the opening handshake, tokens, JSON records
_server.py     the server a service runs in its loop (limits, control)
_client.py     connect() and fetch(), for consoles and scripts
"""

__all__: list[str] = []  # a layer, not an API: import its modules
