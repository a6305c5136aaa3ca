"""Prometheus metrics: what the collector took in, how fast, and how the fleet stands.

Each collector has its own registry (not prometheus_client's global one), so several
collectors in one process (the tests) keep their figures apart. Three kinds of figures:

* ingest counters and latencies, counted by the service as calls come and go;
* group commits, read from the committer's figures when scraped;
* the fleet (devices by compliance state per check, by status, agents' outbox losses), read
  from the database at scrape time through a read-only connection, at most once every
  `FLEET_CACHE_SECONDS` however often it is scraped.

Labels are fixed vocabularies (RPC names, gRPC code names, policy check ids, compliance
states, device statuses): never a device id, a hostname, a network name or anything personal.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devposture.collector.compliance import STATES
from devposture.collector.ingest import GroupCommitter
from devposture.collector.store import DatabaseTarget, Store, database_errors
from devposture.collector.store.fleet import FleetFigures
from devposture.policy import Policy

log = logging.getLogger(__name__)

# The fleet figures are read from the database at most this often.
FLEET_CACHE_SECONDS = 10.0
RPCS = ("Report", "ReportBatch")
# Seconds from receipt to acknowledgement: a lone report takes a disk sync (milliseconds); a
# group commit under load, up to a second or so.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """The counters the service updates, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "devposture_reports_received",
            "Reports acknowledged, by call and outcome (stored, or a duplicate already stored).",
            ["rpc", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "devposture_reports_rejected",
            "Reports refused, by call and gRPC status code name (a refused batch counts each"
            " of its reports, one whose bytes cannot be decoded counts one; UNAVAILABLE is"
            " push-back, RESOURCE_EXHAUSTED the rate limit).",
            ["rpc", "reason"],
            registry=self.registry,
        )
        self.abandoned = Counter(
            "devposture_reports_abandoned",
            "Reports in calls that ended before their answer, by call and why: the caller's"
            " deadline passed (DEADLINE_EXCEEDED) or the call was cancelled (CANCELLED). Not"
            " acknowledged, so the agent sends them again; stored meanwhile, they are then"
            " counted as duplicates.",
            ["rpc", "reason"],
            registry=self.registry,
        )
        self.identity_calls = Counter(
            "devposture_identity_calls",
            "Enroll, Renew and Reestablish calls by the gRPC status they ended with: OK, or"
            " the refusal's code (UNAUTHENTICATED for a token or proof refused,"
            " INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED for the enrollment"
            " throttle, UNAVAILABLE), DEADLINE_EXCEEDED or CANCELLED for a call that ended"
            " unanswered.",
            ["rpc", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "devposture_ingest_latency_seconds",
            "Seconds from receiving a report call to acknowledging it (stored and committed).",
            ["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Every series exists from the start, at zero; those every acknowledgement counts
        # are kept (`labels` takes a lock and checks its values, on the event loop, per call).
        self._latency = {rpc: self.latency.labels(rpc) for rpc in RPCS}
        self._received = {(rpc, outcome): self.received.labels(rpc, outcome)
                          for rpc in RPCS for outcome in ("stored", "duplicate")}  # fmt: skip

    def acknowledged(self, rpc: str, stored: int, duplicate: int, seconds: float) -> None:
        if stored:
            self._received[rpc, "stored"].inc(stored)
        if duplicate:
            self._received[rpc, "duplicate"].inc(duplicate)
        self._latency[rpc].observe(seconds)

    def refused(self, rpc: str, code: grpc.StatusCode, reports: int = 1) -> None:
        if reports > 0:
            self.rejected.labels(rpc, code.name).inc(reports)

    def gave_up(self, rpc: str, code: grpc.StatusCode, reports: int = 1) -> None:
        """A call that ended unanswered (`code`: DEADLINE_EXCEEDED or CANCELLED)."""
        if reports > 0:
            self.abandoned.labels(rpc, code.name).inc(reports)

    def identity_call(self, rpc: str, code: grpc.StatusCode) -> None:
        """One Enroll, Renew or Reestablish call, by how it ended."""
        self.identity_calls.labels(rpc, code.name).inc()

    def refusals(self, rpc: str, codes: Iterable[int]) -> None:
        """Per-report refusals inside a batch response, by numeric gRPC code."""
        by_number = {c.value[0]: c for c in grpc.StatusCode}
        for number in codes:
            self.refused(rpc, by_number.get(number, grpc.StatusCode.UNKNOWN))


class AlertMetrics:
    """IT alert deliveries (collector/alerts/), counted in `registry` (the service's: served
    with the ingest counters). Labels: the channel (wecom, webhook, email) and, for failures,
    retried, refused (not retried: the settings need a fix) or given_up (retried for a day).
    The urgent alerts (a database that refuses writes, told without a record:
    `alerts/unrecorded.py`) are counted apart: they never pass through the digests' outbox,
    and each collector sends, so counts, its own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "devposture_alerts_sent",
            "Alert digests delivered, by channel.",
            ["channel"],
            registry=registry,
        )
        self.failures = Counter(
            "devposture_alert_failures",
            "Failed alert deliveries by channel and outcome: retried later, refused (not"
            " retried) or given_up (after retrying for a day).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.urgent_sent = Counter(
            "devposture_urgent_alerts",
            "Urgent alerts delivered by this collector (its database refused writes, so they"
            " were sent without a record), by channel and status: new, reminder, resolved.",
            ["channel", "status"],
            registry=registry,
        )
        self.urgent_failures = Counter(
            "devposture_urgent_alert_failures",
            "Urgent alerts this collector failed to deliver, by channel (each tried again at"
            " the next alert round).",
            ["channel"],
            registry=registry,
        )


class CommitCollector(Collector):
    """The group committer's figures, read when scraped."""

    def __init__(self, committer: GroupCommitter) -> None:
        self._committer = committer

    def collect(self) -> Iterator[Metric]:
        figures = self._committer.figures
        yield CounterMetricFamily(
            "devposture_group_commits",
            "Transactions (one disk sync each) that stored reports; reports per commit is"
            " rate(devposture_group_commit_reports_total) / rate(devposture_group_commits_total).",
            value=figures.commits,
        )
        yield CounterMetricFamily(
            "devposture_group_commit_reports",
            "Reports stored by group commits.",
            value=figures.reports,
        )
        yield CounterMetricFamily(
            "devposture_group_commit_failures",
            "Group commits whose transaction failed (none of their reports was acknowledged).",
            value=figures.failures,
        )
        yield GaugeMetricFamily(
            "devposture_group_commit_largest_reports",
            "Most reports stored in one transaction since the collector started.",
            value=figures.largest_group,
        )
        yield GaugeMetricFamily(
            "devposture_ingest_queue_reports",
            "Reports waiting to be committed (push-back starts at the committer's limit).",
            value=self._committer.waiting,
        )


class FleetCollector(Collector):
    """The fleet's figures, read from the database when scraped, cached for a few seconds so
    that a storm of scrapes costs the database one read."""

    def __init__(
        self,
        database: DatabaseTarget,
        policy: Callable[[], Policy],
        clock: Callable[[], dt.datetime],
        cache_seconds: float = FLEET_CACHE_SECONDS,
    ) -> None:
        self._database = database
        self._policy = policy
        self._clock = clock
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._reader: Store | None = None
        self._cached: FleetFigures | None = None
        self._read_at = 0.0
        self.reads = 0  # database reads, for tests and benchmarks

    def _store(self) -> Store:
        if self._reader is None:
            self._reader = Store.open_reader(self._database)  # the engine refuses writes
        return self._reader

    def figures(self) -> FleetFigures | None:
        """The figures, fresh within the cache period; None when the database cannot be read."""
        with self._lock:
            if self._cached is not None and time.monotonic() - self._read_at < self.cache_seconds:
                return self._cached
            try:
                self._cached = self._store().fleet.fleet_figures(self._policy(), self._clock())
            except database_errors() as exc:
                log.warning("metrics: cannot read the fleet from the database: %s", exc)
                return self._cached
            self._read_at = time.monotonic()
            self.reads += 1
            return self._cached

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        if figures is None:
            return
        by_check = GaugeMetricFamily(
            "devposture_devices",
            "Devices per policy check and compliance state (as `report fleet` counts them).",
            labels=["check", "state"],
        )
        for check_id, per_state in sorted(figures.by_check.items()):
            for state in STATES:
                by_check.add_metric([check_id, state], per_state[state])
        yield by_check
        by_status = GaugeMetricFamily(
            "devposture_devices_by_status",
            "Enrolled devices by status (active, revoked, retired).",
            labels=["status"],
        )
        for status, count in figures.by_status.items():
            by_status.add_metric([status], count)
        yield by_status
        outbox = GaugeMetricFamily(
            "devposture_agent_outbox_reports",
            "Reports the agents' outboxes merged (coalesced), dropped when full, or found"
            " corrupt, as each device last said (cumulative per device), summed over devices.",
            labels=["kind"],
        )
        for kind, count in figures.outbox.items():
            outbox.add_metric([kind], count)
        yield outbox
        yield GaugeMetricFamily(
            "devposture_agent_outbox_pending_reports",
            "Reports waiting in the agents' outboxes, as each device last said, summed.",
            value=figures.pending,
        )


@dataclass
class MetricsServer:
    """The HTTP endpoint serving /metrics, on a thread of its own."""

    httpd: WSGIServer
    thread: threading.Thread
    fleet: FleetCollector

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the database connection (blocks up to half a second)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
        self.fleet.close()


def start_metrics_server(
    metrics: IngestMetrics,
    committer: GroupCommitter,
    fleet: FleetCollector,
    host: str,
    port: int,
) -> MetricsServer:
    """Serve `metrics` and the committer's and fleet's figures over HTTP on host:port (0: a
    free port). Raises OSError when the address cannot be bound."""
    # Not auto-described: describing would read the fleet at start-up and fill the cache.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(metrics.registry))
    registry.register(CommitCollector(committer))
    registry.register(fleet)
    httpd, thread = start_http_server(port, addr=host, registry=registry)
    thread.name = "devposture-metrics"
    return MetricsServer(httpd, thread, fleet)


class _Forward(Collector):
    """One registry's metrics inside another."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
