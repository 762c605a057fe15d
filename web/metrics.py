"""``/metrics``: the Prometheus text format, written by the official client library.

The figures come from the database, so they are the same whichever process serves them (the
daemon, or ``topicwatch web`` beside it) and survive restarts: runs by topic and status, pages
fetched, changes by kind, a histogram of run durations, the alert outbox's pending and failed
rows, and each topic's last good run as a Unix timestamp.

Counters are kept as running totals: the first scrape reads the run history once; later
scrapes read only the runs that finished since (by primary key), so a scrape costs the same
after a year of runs as after a day.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from storage.browse import RunTally, alert_counts, finished_runs, last_successes
from storage.spec import CHANGE_KINDS

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: crawl runs take from a second (a few pages, nothing new) to the run timeout.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class _Totals:
    """Running totals over every finished run read so far."""

    def __init__(self) -> None:
        self.next_id = 0
        self.counted: set[int] = set()  # runs at or above next_id already counted
        self.runs: Counter[tuple[str, str]] = Counter()
        self.pages: Counter[str] = Counter()
        self.changes: Counter[tuple[str, str]] = Counter()
        self.buckets: dict[str, list[int]] = {}
        self.duration_sum: dict[str, float] = {}
        self.duration_count: Counter[str] = Counter()

    def add(self, run: RunTally) -> None:
        self.runs[(run.topic, run.status)] += 1
        self.pages[run.topic] += run.pages
        for kind, count in run.changes.items():
            self.changes[(run.topic, kind)] += count
        if run.seconds is not None:
            counts = self.buckets.setdefault(run.topic, [0] * len(DURATION_BUCKETS))
            for index, bound in enumerate(DURATION_BUCKETS):
                if run.seconds <= bound:
                    counts[index] += 1
            self.duration_sum[run.topic] = self.duration_sum.get(run.topic, 0.0) + run.seconds
            self.duration_count[run.topic] += 1


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.families()


class Metrics:
    """The metrics of one database; :meth:`render` is blocking (run it off the event loop)."""

    def __init__(self, session_factory: sessionmaker[Session], *, version: str) -> None:
        self.sessions = session_factory
        self.version = version
        self.lock = threading.Lock()
        self.totals = _Totals()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def render(self) -> bytes:
        """The exposition in Prometheus' text format."""
        return generate_latest(self.registry)

    def _update(self) -> _Totals:
        with self.lock:
            totals = self.totals
            tallies, next_id = finished_runs(self.sessions, totals.next_id)
            for tally in tallies:
                if tally.id not in totals.counted:
                    totals.add(tally)
                    totals.counted.add(tally.id)
            totals.next_id = next_id
            totals.counted = {run_id for run_id in totals.counted if run_id >= next_id}
            return totals

    def families(self) -> Iterator[Metric]:
        totals = self._update()
        info = GaugeMetricFamily(
            "topicwatch_build_info", "The running topicwatch release.", labels=["version"]
        )
        info.add_metric([self.version], 1.0)
        yield info
        runs = CounterMetricFamily(
            "topicwatch_runs",
            "Finished crawl runs, by topic and status (ok, partial, failed, timeout, refused).",
            labels=["topic", "status"],
        )
        for (topic, status), count in sorted(totals.runs.items()):
            runs.add_metric([topic, status], count)
        yield runs
        pages = CounterMetricFamily(
            "topicwatch_pages_fetched", "Pages fetched by crawl runs, by topic.", labels=["topic"]
        )
        for topic, count in sorted(totals.pages.items()):
            pages.add_metric([topic], count)
        yield pages
        changes = CounterMetricFamily(
            "topicwatch_changes",
            "Changes recorded by crawl runs, by topic and kind (new, updated, removed, restored).",
            labels=["topic", "kind"],
        )
        for (topic, kind), count in sorted(totals.changes.items()):
            if kind in CHANGE_KINDS:
                changes.add_metric([topic, kind], count)
        yield changes
        duration = HistogramMetricFamily(
            "topicwatch_run_duration_seconds",
            "Wall-clock duration of finished crawl runs, by topic.",
            labels=["topic"],
        )
        for topic, counts in sorted(totals.buckets.items()):
            buckets = [(_bound(b), float(c)) for b, c in zip(DURATION_BUCKETS, counts, strict=True)]
            buckets.append(("+Inf", float(totals.duration_count[topic])))
            duration.add_metric([topic], buckets, totals.duration_sum[topic])
        yield duration
        outbox = alert_counts(self.sessions)
        yield GaugeMetricFamily(
            "topicwatch_alerts_pending",
            "Alerts waiting in the outbox to be delivered (or retried).",
            value=outbox["pending"],
        )
        yield GaugeMetricFamily(
            "topicwatch_alerts_failed",
            "Alerts given up on after their last delivery attempt (topicwatch alerts retry).",
            value=outbox["failed"],
        )
        success = GaugeMetricFamily(
            "topicwatch_last_success_timestamp_seconds",
            "When each topic's last good (ok or partial) crawl run finished, as a Unix time.",
            labels=["topic"],
        )
        for topic, moment in sorted(last_successes(self.sessions).items()):
            success.add_metric([topic], moment.timestamp())
        yield success


def _bound(value: float) -> str:
    return repr(value)
