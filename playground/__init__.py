"""The toolkit's playground: a live REPL to spawn, watch and control workers.

Run it with ``python -m playground`` (or ``toolkit-playground``, or ``make run``);
see docs/playground.md. ``python -m playground -c CODE`` and
``python -m playground script.py`` run the same namespace without a terminal.
"""
