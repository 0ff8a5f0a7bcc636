"""The toolkit's playground: a console with top-level ``await`` and the toolkit imported.

Run it with ``python -m playground`` (or ``toolkit-playground``).
"""
