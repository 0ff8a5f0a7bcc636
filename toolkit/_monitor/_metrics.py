"""The toolkit's figures for Prometheus, through prometheus_client (the ``metrics`` extra).

One collector reads ``toolkit.inspect.snapshot()`` at each scrape (from
prometheus_client's own thread: a snapshot never waits for the loop), so
nothing is counted twice and a pool costs nothing between scrapes. Every
series is labelled with its pool's name and kind:

    toolkit_tasks_submitted_total, _completed_total, _failed_total,
    _cancelled_total, _timed_out_total      counters of tasks
    toolkit_worker_deaths_total, toolkit_workers_started_total
    toolkit_tasks_queued, toolkit_tasks_running      gauges (queue depth)
    toolkit_workers{state=...}, toolkit_pool_size    gauges
    toolkit_task_duration_seconds       histogram of how long tasks ran
    toolkit_processes{state=...}        toolkit.Process objects by state
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import REGISTRY
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector as _Base
except ModuleNotFoundError as exc:  # pragma: no cover - the dev extra installs it
    raise ModuleNotFoundError(
        "toolkit.monitor.metrics() needs prometheus_client: pip install 'toolkit[metrics]'"
    ) from exc

from .._core._inspection import Snapshot, snapshot
from .._core._registry import DURATION_BOUNDS

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Collector", "register"]

_COUNTERS = (
    ("submitted", "toolkit_tasks_submitted", "Tasks the pool accepted."),
    ("completed", "toolkit_tasks_completed", "Tasks that returned a result."),
    ("failed", "toolkit_tasks_failed", "Tasks that raised (their own error, a crash, a timeout)."),
    ("cancelled", "toolkit_tasks_cancelled", "Tasks cancelled before they finished."),
    ("timed_out", "toolkit_tasks_timed_out", "Tasks stopped by their timeout."),
    ("worker_deaths", "toolkit_worker_deaths", "Workers that ended unexpectedly."),
    ("workers_started", "toolkit_workers_started", "Workers started, replacements included."),
)
_STATES = ("starting", "idle", "busy", "stopping")
_LABELS = ["pool", "kind"]


class Collector(_Base):
    """Reads the toolkit's pools and processes at each scrape."""

    def describe(self) -> Iterator[Metric]:
        """The metric names, without reading anything: a registry refuses them twice."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        return self._families(snapshot())

    def _families(self, snap: Snapshot | None) -> Iterator[Metric]:
        counters = {
            field: CounterMetricFamily(name, text, labels=_LABELS)
            for field, name, text in _COUNTERS
        }
        queued = GaugeMetricFamily(
            "toolkit_tasks_queued", "Tasks accepted, not yet sent to a worker.", labels=_LABELS
        )
        running = GaugeMetricFamily(
            "toolkit_tasks_running", "Tasks sent to a worker, not finished.", labels=_LABELS
        )
        size = GaugeMetricFamily("toolkit_pool_size", "Workers the pool keeps.", labels=_LABELS)
        workers = GaugeMetricFamily(
            "toolkit_workers", "Workers in each state.", labels=[*_LABELS, "state"]
        )
        durations = HistogramMetricFamily(
            "toolkit_task_duration_seconds",
            "How long finished tasks ran (a map's chunk: each item at its average).",
            labels=_LABELS,
        )
        for pool in snap.pools if snap is not None else ():
            stats = pool.stats
            labels = [stats.name, stats.kind]
            for field, _name, _text in _COUNTERS:
                counters[field].add_metric(labels, getattr(stats, field))
            queued.add_metric(labels, stats.queued)
            running.add_metric(labels, stats.running)
            size.add_metric(labels, stats.size)
            for state in _STATES:
                workers.add_metric([*labels, state], getattr(stats, state))
            if stats.durations:
                cumulative = list(itertools.accumulate(stats.durations))
                bounds = [str(b) for b in DURATION_BOUNDS] + ["+Inf"]
                durations.add_metric(
                    labels, list(zip(bounds, cumulative, strict=True)), stats.duration_sum
                )
        processes = GaugeMetricFamily(
            "toolkit_processes", "toolkit.Process objects in each state.", labels=["state"]
        )
        if snap is not None:
            by_state = Counter[str](p.state for p in snap.processes)
            for state in ("initial", "running", "exited"):
                processes.add_metric([state], by_state[state])
        yield from counters.values()
        yield from (queued, running, size, workers, durations, processes)


def register(registry: Any = None) -> Collector:
    """Register a Collector on registry (prometheus_client's REGISTRY by default); return it.

    Raises:
        ValueError: registry has these metrics already (register once per registry).
    """
    collector = Collector()
    (REGISTRY if registry is None else registry).register(collector)
    return collector
