"""The toolkit's version: one place, which the package metadata, ``toolkit.__version__``,
``python -m toolkit``, the playground's ``--version`` and a monitor's hello all read."""

__all__ = ["__version__"]

__version__ = "0.1.0"
