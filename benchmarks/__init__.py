"""Comparative benchmarks: ``make bench`` (or ``python -m benchmarks``); see docs/benchmarks.md."""
