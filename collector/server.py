"""Build and run the collector's gRPC server.

The agent-facing service listens on two ports, as Wazuh does (1515 enrollment, 1514 events):
gRPC's Python API can either require a client certificate or not ask for one, so enrollment
(the agent has no certificate yet) gets a TLS port, and reports get a port that requires a
client certificate signed by the collector's CA. Both send the CA certificate after the server
certificate so an enrolling agent can pin it by fingerprint.

Both ports also serve gRPC health checking and reflection (collector/health.py); Prometheus
metrics are served over HTTP on a port of their own (collector/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from devposture.collector import fleet_history, outage, ports
from devposture.collector.admin.service import AdminServer, start_admin_server
from devposture.collector.agent_config import network_hash_key
from devposture.collector.alerts.task import keep_alerting
from devposture.collector.ca_holdings import keep_saying, refuse_if_behind
from devposture.collector.company_time import zone_of
from devposture.collector.config import DEFAULT_PRESENCE_SECONDS, CollectorConfig
from devposture.collector.datadir import DataFolderLock, claim_installation, lock_data_folder
from devposture.collector.gc_settle import settled
from devposture.collector.health import Health
from devposture.collector.log_every import LogEvery
from devposture.collector.metrics import FleetCollector, MetricsServer, start_metrics_server
from devposture.collector.policy import policy_stamp
from devposture.collector.policy.in_force import (
    adopt,
    apply_edit,
    collector_name,
    edited,
    keep_in_force,
)
from devposture.collector.raw_rpc import add_raw_servicer
from devposture.collector.refused_writes import RefusedWrites
from devposture.collector.report_writer import ReportWriter
from devposture.collector.service import CollectorService
from devposture.collector.store import DatabaseTarget, Store, load_parts
from devposture.collector.store.base import to_us
from devposture.collector.store.coordination import Coordination, Lease, LeaseLost
from devposture.collector.trust import Trust
from devposture.collector.web.server import DashboardServer, start_dashboard
from devposture.policy import PolicyError
from devposture.sd_notify import Notifier
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
# Time a call in flight on an aged connection gets to finish before the connection is cut.
CONNECTION_AGE_GRACE_MS = 10_000
KEEPALIVE_MIN_PING_MS = 30_000


@dataclass
class RunningServer:
    server: grpc.aio.Server
    service: CollectorService
    store: Store
    enroll_port: int
    report_port: int
    # The administration server, on its own port (None when not asked for).
    admin: AdminServer | None = None
    # The service's reading connection (admission checks).
    reader: Store | None = None
    stopped: bool = False
    health: Health | None = None
    # The Prometheus endpoint (None when not asked for, disabled or its port was busy).
    metrics: MetricsServer | None = None
    # The web dashboard (None when not asked for or disabled).
    dashboard: DashboardServer | None = None
    # How long `stop` keeps serving with health NOT_SERVING before it begins to shut down.
    drain_seconds: float = 0.0
    # This collector's hold on its data folder (None: the caller holds it), released last.
    data_lock: DataFolderLock | None = None
    # Set once the drain is over (or was cut): work still under way then is not waited for
    # (the alerts' sending, alerts/task.py).
    drained: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _drain_cut: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def admin_port(self) -> int | None:
        return None if self.admin is None else self.admin.port

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics is None else self.metrics.port

    @property
    def web_port(self) -> int | None:
        return None if self.dashboard is None else self.dashboard.port

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS, drain: float | None = None) -> None:
        """Stop cleanly, as grpc-go and Kubernetes graceful shutdowns do. First the drain:
        health checks answer NOT_SERVING while everything is still served for `drain` seconds
        (default `drain_seconds`), so a load balancer polling health takes this collector out
        of rotation before any connection is refused. Then new reports are pushed back with a
        retry hint, reports already taken are committed and acknowledged (calls in flight get
        up to `grace`), and the store closes. A report is never acknowledged without being
        stored, nor stored twice. Stopping twice is harmless: the second call ends the drain
        early and returns once the first has stopped."""
        if self.stopped:
            self.cut_drain()
            await self._done.wait()
            return
        self.stopped = True
        try:
            await self._drain(self.drain_seconds if drain is None else drain)
            self.service.begin_shutdown()  # reports are pushed back from here on
            if self.admin is not None:
                await self.admin.stop(grace)
            await self.server.stop(grace)
            await self.service.aclose()
            await asyncio.to_thread(self._seal_all)
            if self.metrics is not None:
                await asyncio.to_thread(self.metrics.stop)
            if self.dashboard is not None:
                await asyncio.to_thread(self.dashboard.stop)
            self.store.close()
            if self.reader is not None:
                self.reader.close()
            if self.data_lock is not None:
                self.data_lock.release()
        finally:
            self._done.set()

    def _seal_all(self) -> None:
        """Every report stored, sealed into the chain before the store closes (the next
        export or start would seal them too; store/sealing.py)."""
        try:
            self.store.sealing.seal_all()
        except Exception as exc:  # the reports are stored; their seal waits for the next writer
            log.error("could not seal the last reports into the evidence chain: %s", exc)

    def cut_drain(self) -> None:
        """End a drain in progress now (a second SIGTERM or Ctrl-C): shut down without
        waiting it out."""
        self._drain_cut.set()

    async def drain(self) -> None:
        """The drain `stop` begins with, begun ahead of it (`serve`, as its background tasks
        end, so that an alert attempt under way may end within the drain, not after it);
        `stop` then does not drain again."""
        await self._drain(self.drain_seconds)

    async def _drain(self, seconds: float) -> None:
        if self.drained.is_set():
            return
        try:
            if self.health is not None:
                self.health.drain()
            if seconds <= 0 or self._drain_cut.is_set():
                return
            log.info(
                "draining: health checks answer NOT_SERVING; still serving for %g s, then"
                " stopping", seconds,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_cut.wait(), seconds)
        finally:
            self.drained.set()


async def start(
    config: CollectorConfig,
    enroll_port: int | None = None,
    report_port: int | None = None,
    host: str | None = None,
    *,
    admin_port: int | None = None,
    metrics_port: int | None = None,
    web_port: int | None = None,
    share_agent_ports: bool = False,
    lock_data: bool = True,
    writer_process: bool = False,
    policy_file: bool = True,
) -> RunningServer:
    """Lock the data folder, open the store, bind both ports and start serving. Ports of 0
    pick free ones.

    The admin server (its own grpc.aio server on [admin] host) starts only when `admin_port`
    is given, and the metrics endpoint (HTTP on [metrics] host) only when `metrics_port` is:
    `serve` gives the configured ones; embedders and tests opt in.

    Every port is this collector's alone: a second collector on the same port is refused
    (PortUnavailable), where gRPC's default would let both listen and split the agents
    between them. `share_agent_ports` is the one place that lets several processes listen
    on the agent ports on purpose: the workers of ONE collector (`serve --workers`), whose
    parent then holds the data folder's lock and starts them with `lock_data=False`. Without
    it, a data folder another collector serves is refused (DataFolderInUse).

    `writer_process`: reports are written by a process of their own
    (collector/report_writer.py), as `serve` does unless [server] report_writer = "thread";
    else by the store's thread of this process. Without `policy_file` (the workers of `serve
    --workers` but worker 0) the policy in force is taken without reading the policy file."""
    data_lock = lock_data_folder(config.data_dir) if lock_data else None
    try:
        running = await _serve(
            config, enroll_port, report_port, host, admin_port=admin_port,
            metrics_port=metrics_port, web_port=web_port, share_agent_ports=share_agent_ports,
            writer_process=writer_process, policy_file=policy_file,
        )  # fmt: skip
    except BaseException:
        if data_lock is not None:
            data_lock.release()
        raise
    running.data_lock = data_lock
    return running


async def _serve(
    config: CollectorConfig,
    enroll_port: int | None,
    report_port: int | None,
    host: str | None,
    *,
    admin_port: int | None,
    metrics_port: int | None,
    web_port: int | None,
    share_agent_ports: bool,
    writer_process: bool,
    policy_file: bool = True,
) -> RunningServer:
    """`start`, once the data folder is this process's."""
    trust = Trust(config)
    # Both follow the certificate files on disk: `tls rotate` and `ca rollover` take effect
    # for new connections within a second or two, without a restart.
    enroll_credentials = trust.server_credentials(require_client_auth=False)
    report_credentials = trust.server_credentials(require_client_auth=True)
    store = Store.open(config.database)
    try:
        claim_installation(config, store)  # never another installation's database
        refuse_if_behind(config, store)  # never a ca/ that missed the others' CA rollover
        policy = keep_in_force(config, store, file=policy_file)
    except BaseException:
        store.close()
        raise
    reader = Store.open_reader(config.database)
    lifetime = dt.timedelta(days=config.device_certificate_days)
    hash_key = network_hash_key(config.data_dir)
    writer = ReportWriter.started(config.database) if writer_process else None
    service = CollectorService(
        store,
        trust,
        lifetime,
        policy,
        network_hash_key=hash_key,
        device_calls_per_minute=config.device_calls_per_minute,
        device_call_burst=config.device_call_burst,
        reader=reader,
        writer=writer,
    )
    limit = config.max_report_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # Every connection is closed gracefully after this age: a revoked device's open
            # connections end within a minute (each new call is checked against the store).
            ("grpc.max_connection_age_ms", int(config.max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
            # Agents ping every 120 s, only with a call in flight (agent/transport.py
            # CHANNEL_OPTIONS); accept pings down to 30 s apart, a 4x margin, so an agent's
            # keepalive is never answered with GOAWAY "too_many_pings". A client pinging
            # faster still gets the default two strikes.
            ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_MIN_PING_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            # The agent ports are this collector's alone unless shared on purpose.
            *ports.grpc_options(shared=share_agent_ports),
        ]
    )
    # Raw bytes in: the service decodes each request after admission (collector/raw_rpc.py).
    add_raw_servicer(
        service, pb.DESCRIPTOR.services_by_name["Collector"], server, guard=outage.guarded
    )
    health = Health()
    health.add_to(server)
    service.on_shutdown.append(health.drain)
    listen = host if host is not None else config.host
    try:
        # PortUnavailable names a taken port, why, and the fix.
        bound_enroll = ports.bind_grpc(
            server,
            ports.ENROLL,
            listen,
            config.enroll_port if enroll_port is None else enroll_port,
            enroll_credentials,
        )
        bound_report = ports.bind_grpc(
            server,
            ports.REPORT,
            listen,
            config.report_port if report_port is None else report_port,
            report_credentials,
        )
    except OSError:
        service.close()
        store.close()
        reader.close()
        raise
    service.report_port = bound_report
    running: RunningServer | None = None
    try:  # Ctrl-C (the runner cancels this task) or a failure while starting: what started stops
        await server.start()
        await health.serving()
        log.info("collector listening: enroll port %d, report port %d", bound_enroll, bound_report)
        running = RunningServer(
            server, service, store, bound_enroll, bound_report, reader=reader, health=health,
            drain_seconds=config.drain_seconds,
        )  # fmt: skip
        await _start_beside(running, config, metrics_port, web_port, admin_port)
    except BaseException:
        if running is None:
            await server.stop(None)
            service.close()
            store.close()
            reader.close()
        elif not running.stopped:
            await running.stop(0, drain=0)
        raise
    return running


async def _start_beside(
    running: RunningServer, config: CollectorConfig, metrics_port: int | None,
    web_port: int | None, admin_port: int | None,
) -> None:  # fmt: skip
    """The metrics endpoint, the dashboard and the admin port, those asked for."""
    if metrics_port is not None:
        running.metrics = _start_metrics(config, running.service, metrics_port)
    if web_port is not None:
        try:
            running.dashboard = await asyncio.to_thread(
                start_dashboard, config, config.web_host, web_port
            )
        except OSError as exc:
            await running.stop(0, drain=0)
            ports.refuse(ports.WEB, config.web_host, web_port, exc)
        log.info("dashboard served on %s", running.dashboard.url)
    if admin_port is not None:
        try:
            running.admin = await start_admin_server(config, admin_port)
        except OSError as exc:
            await running.stop(0, drain=0)
            ports.refuse(ports.ADMIN, config.admin_host, admin_port, exc)


def _start_metrics(
    config: CollectorConfig, service: CollectorService, port: int
) -> MetricsServer | None:
    """The metrics endpoint, or None when its port cannot be bound: monitoring must never keep
    agents from reporting, so the collector serves on, and says so (a scrape target down is
    what the monitoring notices)."""
    fleet = FleetCollector(config.database, lambda: service.policy, service.now)
    try:
        metrics = start_metrics_server(
            service.metrics, service.committer, fleet, config.metrics_host, port
        )
    except OSError as exc:
        log.error(
            "cannot serve metrics on %s:%d (%s): serving agents without metrics;"
            " choose another [metrics] port or --metrics-port",
            config.metrics_host, port, exc,
        )  # fmt: skip
        return None
    log.info("metrics served on http://%s:%d/metrics", config.metrics_host, metrics.port)
    return metrics


POLICY_POLL_SECONDS = 2.0


INGEST_LOG_SECONDS = 60.0


async def log_ingest(
    running: RunningServer, stop: asyncio.Event, every: float = INGEST_LOG_SECONDS
) -> None:
    """A line a minute on what was stored, instead of a line per report (a fleet sends
    thousands a minute); nothing when nothing arrived."""
    figures = running.service.committer.figures
    seen = dataclasses.replace(figures)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        line = figures.since(seen)
        if line is not None:
            log.info("last %d s: %s", round(every), line)
        seen = dataclasses.replace(figures)


SEAL_SECONDS = 5.0


async def keep_sealing(
    running: RunningServer,
    stop: asyncio.Event,
    every: float = SEAL_SECONDS,
    failing: LogEvery | None = None,
    refused: RefusedWrites | None = None,
) -> None:
    """Seal the reports that waited their longest (store/sealing.py) every few seconds: a
    quiet collector's last reports are chained within SEAL_AFTER_US plus this. A failure is
    logged (once every few seconds through an outage; a write the database refuses once,
    `refused`) and tried again; it never stops the collector."""
    failing = failing or LogEvery()
    refused = refused or RefusedWrites("sealing stored reports into the evidence chain")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        try:
            now = to_us(running.service.now())
            await running.service.in_db(lambda: running.store.sealing.seal_due(now))  # noqa: B023
            refused.wrote()
        except Exception as exc:  # the reports are stored; their seal waits a moment
            if refused.failed(exc):
                continue
            since = failing.due()
            if since is not None:
                log.error("could not seal reports into the evidence chain: %s%s", exc, since)


async def keep_present(
    running: RunningServer,
    stop: asyncio.Event,
    every: float = DEFAULT_PRESENCE_SECONDS,
    presence: str | None = None,
    refused: RefusedWrites | None = None,
) -> None:
    """Say this process serves, every `every` seconds (held three times as long), and keep
    its share of the per-device rate limit among the processes serving on the database
    (collector/ratelimit.py). Gone when it stops; a process that dies is counted out when
    its presence lapses. A failure is logged and tried again; it never stops the collector.
    `presence`: a worker of `serve --workers` says its own (`worker_presence`), so that a
    worker started again in place of one that died takes up the dead one's presence: it was
    counted for its three periods, and every process kept a smaller share. A write the
    database refuses is said once (`refused`); the share stays as it was meanwhile."""
    # This process, and this server of it (a test or an embedder may run two in one).
    holder = presence or f"{collector_name()}/{secrets.token_hex(4)}"
    coordination = running.store.coordination
    limiter = running.service.limiter
    hold = dt.timedelta(seconds=every * 3)
    skewed = False
    refused = refused or RefusedWrites(
        "counting the collectors serving on the database (each one's share of the per-device"
        " rate limit)"
    )
    while not stop.is_set():
        try:
            serving, skew = await running.service.in_db(
                lambda: _present(coordination, holder, running.service.now, hold)
            )
            refused.wrote()
            if skew is not None and (abs(skew) > CLOCK_SKEW) != skewed:
                skewed = not skewed
                _say_skew(skew, skewed)
            if serving != limiter.serving:
                log.info("%d collector processes serve on this database: each keeps 1/%d of"
                         " the per-device rate limit", serving, serving)  # fmt: skip
            limiter.share(serving)
        except Exception as exc:  # the limit stays as it was
            if not refused.failed(exc):
                log.error("could not count the collectors serving on the database: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    with contextlib.suppress(Exception):
        await running.service.in_db(lambda: coordination.absent(holder))


# A collector clock further than this from the database server's is named in the log.
CLOCK_SKEW = dt.timedelta(seconds=10)


def _present(
    coordination: Coordination, holder: str, now: Callable[[], dt.datetime], hold: dt.timedelta
) -> tuple[int, dt.timedelta | None]:
    """Say `holder` serves, by the database server's clock where there is one (PostgreSQL),
    so that collectors whose clocks differ count one another alike (by its own clock, one
    ahead by more than the hold counted every other one out at each beat, deleting their
    presence, and kept the whole per-device limit for itself). The processes serving, and
    how far this collector's clock is behind the database's (None on SQLite)."""
    local = now()
    database = coordination.database_clock()
    serving = coordination.present(holder, local if database is None else database, hold)
    return serving, None if database is None else database - local


def _say_skew(skew: dt.timedelta, skewed: bool) -> None:
    """Log that this collector's clock is off the database server's, or back in step."""
    if skewed:
        log.error(
            "this collector's clock is %+.0f s off the database server's: the times of the"
            " reports it takes, and the work it does once for all collectors, follow its"
            " clock; keep every collector's clock in step (NTP)", -skew.total_seconds(),
        )  # fmt: skip
    else:
        log.info("this collector's clock is in step with the database server's again")


def worker_presence(config: CollectorConfig, worker: int) -> str:
    """The presence of worker `worker` of the `serve --workers` of this data folder on this
    host: the same for the worker started again in its place."""
    return f"{socket.gethostname()}:{config.data_dir}:worker-{worker}"


HEALTH_SECONDS = 1.0


async def keep_health(running: RunningServer, stop: asyncio.Event,
                      every: float = HEALTH_SECONDS) -> None:  # fmt: skip
    """Health checks follow the database: NOT_SERVING while this process's connections find
    its server unreachable (store/engine.py tries it meanwhile), SERVING once it answers.
    Reads a flag each time, never the database."""
    health = running.health
    if health is None:
        return
    while not stop.is_set():
        reader = running.reader
        await health.database(running.store.reachable and (reader is None or reader.reachable))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


FLEET_DAY_SECONDS = 3600.0
FLEET_DAY_LEASE = "fleet-day"
# After a write the database refused (a full disk, a read-only server), the hour's work is
# tried again this soon: the day's record is written within a minute of space coming back,
# not up to an hour later, when the day it was owed for may have ended.
FLEET_DAY_RETRY_SECONDS = 60.0


async def keep_fleet_days(
    running: RunningServer,
    stop: asyncio.Event,
    every: float = FLEET_DAY_SECONDS,
    database: DatabaseTarget | None = None,
    *,
    retry: float = FLEET_DAY_RETRY_SECONDS,
    refused: RefusedWrites | None = None,
) -> None:
    """Record the fleet's standing for today at start and every hour: the dashboard's trend
    reads how each day ended instead of judging the fleet as of each past day. With the
    `database`, the trend's past week ends that were never recorded are then counted from
    the history, once (`backfill_week_ends`). A failure is logged and tried again next
    hour; it never stops the collector. A write the database refuses is said once
    (`refused`) and the work tried again every `retry` seconds until it goes through. Every
    write of the hour's work is done under the lease (`Coordination.under`): one paused past
    it writes nothing over the next holder's."""

    # This task's name as the lease's holder (two servers may run in one process).
    holder, leases = f"{collector_name()}/{secrets.token_hex(4)}", running.store.coordination

    def record() -> Lease | None:
        """The day's record, by one collector of those sharing the database: whichever takes
        the hour's lease (the others find it held and skip)."""
        now = running.service.now()
        hold = dt.timedelta(seconds=every * 0.9)
        lease = leases.take_lease(FLEET_DAY_LEASE, holder, now, hold)
        if lease is None:
            return None
        with leases.under(lease, running.service.now):
            running.store.fleet.record_fleet_day(running.service.policy, now)
            # Where the next audit export opens its period (at most one a day).
            running.store.checkpoints.advance(to_us(now))
            # Report bodies past the policy's retention (store/retention).
            running.store.retention.prune(
                retention_days=running.service.policy.retention_days, now_us=to_us(now)
            )
        return lease

    refused = refused or RefusedWrites(
        "recording the fleet's day for the trend (with the audit checkpoint and retention pruning)"
    )
    backfill = database
    while not stop.is_set():
        try:
            lease = await running.service.in_db(record)
            if backfill is not None and lease is not None:
                await backfill_week_ends(running, backfill, stop, lease)
                backfill = None
            if database is not None and lease is not None:
                await mark_past_days(running, database, stop, lease)
            refused.wrote()
        except LeaseLost as lost:  # paused past it: the next holder's record stands
            log.warning("the fleet's standing for the trend was not recorded: %s", lost)
        except Exception as exc:  # a summary; the reports themselves are safe
            if not refused.failed(exc):
                log.error("could not record the fleet's standing for the trend: %s", exc)
        # Still owed while writes are refused (or the database fails in between): soon.
        wait = every if refused.said is None else retry
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def mark_past_days(
    running: RunningServer, database: DatabaseTarget, stop: asyncio.Event, lease: Lease
) -> int:
    """Count the fleet at past local midnights not counted yet and keep each count
    (`fleet_history.mark_days`) under `lease`, on a connection and a thread of their own;
    how many."""
    policy, now = running.service.policy, running.service.now()
    started = time.monotonic()
    kept = await asyncio.to_thread(functools.partial(
        fleet_history.mark_days, database, policy, now, stop.is_set, lease=lease,
        clock=running.service.now,
    ))  # fmt: skip
    if kept:
        log.info(
            "counted the fleet at %d past midnights for reports as of a date in %.1f s",
            kept, time.monotonic() - started,
        )  # fmt: skip
    return kept


async def backfill_week_ends(
    running: RunningServer, database: DatabaseTarget, stop: asyncio.Event, lease: Lease
) -> int:
    """Count the trend's past week ends that have no record from the history, on a
    connection and a thread of their own (seconds each over 100,000 devices: ingest goes
    on meanwhile), and keep them under `lease`; how many were counted. Stops between weeks
    on `stop`."""
    policy, now = running.service.policy, running.service.now()
    missing = fleet_history.missing_week_ends(
        await running.service.in_db(running.store.fleet.fleet_days), now, zone_of(policy)
    )
    if not missing:
        return 0
    started = time.monotonic()
    counted = await asyncio.to_thread(
        fleet_history.count_week_ends, database, policy, missing, stop.is_set
    )
    if counted:

        def keep() -> None:
            with running.store.coordination.under(lease, running.service.now):
                running.store.fleet.keep_fleet_days(counted, now)

        await running.service.in_db(keep)
        log.info(
            "counted the fleet at %d past week ends from the history for the trend in %.1f s",
            len(counted), time.monotonic() - started,
        )  # fmt: skip
    return len(counted)


async def watch_policy(
    config: CollectorConfig,
    running: RunningServer,
    stop: asyncio.Event,
    *,
    file: bool = True,
    failing: LogEvery | None = None,
    refused: RefusedWrites | None = None,
) -> None:
    """Apply an edited policy file without a restart, follow the policy other collectors
    on the same database apply, and judge the fleet again under the newest version once,
    whichever collector does it (`_rejudge_owed`). A file with mistakes is refused, with every
    mistake logged, and the policy in force stays as it was. An edit or a re-judging whose
    writes the database refuses (a full disk, a read-only server) is said once (`refused`)
    and stays owed: applied at a later poll, once the database takes writes again."""
    seen: tuple[int, int] | None = None  # the first poll compares the file's text itself
    # A file seen changed is applied once the next poll finds it the same: an editor that
    # saves in two steps (cut, then written) left a first step that, valid on its own (a
    # `[[checks]]` table cut off whole), switched a check off and judged the fleet by it.
    settling: tuple[int, int] | None = None
    # The version the service judges by is not known here: the newest is looked at on the
    # first poll. (Read at this point, it took a version published since the start took the
    # policy in force for one already followed: the collector judged by the older policy
    # until the next edit.)
    in_force = 0
    # This server's name as the re-judging lease's holder (a test or an embedder may run two
    # in one process).
    holder = f"{collector_name()}/{secrets.token_hex(4)}"
    failing = failing or LogEvery()  # through an outage: a line every few seconds
    refused = refused or RefusedWrites(
        "following the policy in force (applying an edit, judging the fleet again under it)"
    )
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLICY_POLL_SECONDS)
        reading: tuple[int, int] | None = None  # the file's stamp, while its edit is applied
        try:
            stamp = policy_stamp(config.policy) if file else None
            if stamp is not None and stamp != seen:
                if stamp != settling:  # changed since the last poll: perhaps still being written
                    settling = stamp
                else:
                    reading = stamp
                    text = await asyncio.to_thread(edited, config)
                    if text is not None:
                        in_force = await _apply_edit(config, running, text)
                    # Seen once applied (or refused, below): an edit the database could not
                    # take was dropped, never applied, until the file was edited again.
                    seen = stamp
            newest = await running.service.in_db(running.store.policies.version)
            if newest > in_force:
                latest = await running.service.in_db(running.store.policies.latest)
                if latest is not None:
                    policy = adopt(config, latest)
                    if policy != running.service.policy:
                        running.service.use_policy(policy)
                        log.info("policy version %d in force (applied by %s)", latest.version,
                                 latest.applied_by)  # fmt: skip
                    in_force = latest.version
            await _rejudge_owed(running, in_force, holder)
            refused.wrote()
        except Exception as exc:  # the database may be away a moment; the next poll retries
            if refused.failed(exc):  # the edit, or the re-judging, stays owed
                continue
            if isinstance(exc, PolicyError | OSError | UnicodeDecodeError):
                seen = reading or seen  # said once; the file's next change is read again
                log.error(
                    "policy file changed but was refused; keeping the previous policy:\n%s", exc
                )
                continue
            since = failing.due()
            if since is not None:
                log.error("could not follow the policy in force: %s%s", exc, since)


REJUDGE_LEASE = "policy-rejudge"
REJUDGE_HOLD = dt.timedelta(hours=1)


async def _apply_edit(config: CollectorConfig, running: RunningServer, text: str) -> int:
    """Publish an edited policy and judge by it from now on; its version. The fleet is judged
    again under it by `_rejudge_owed`, once, by whichever collector takes the lease: this one
    judges by its edit at once even while another collector's re-judging holds the lease (it
    waited for the lease first, an hour when its holder had died, judging by the old policy
    while every other collector judged by the new one)."""
    policy, version = await running.service.in_db(
        lambda: apply_edit(config, running.store, text, usable=running.service.judging_by)
    )
    running.service.use_policy(policy)
    log.info("policy version %d in force (applied by this collector)", version.version)
    return version.version


async def _rejudge_owed(running: RunningServer, version: int, holder: str) -> None:
    """Judge every device again under `version` (the policy this collector judges by) unless
    the fleet was judged under it or a newer one already (`done_through`): once, under a lease,
    by whichever collector takes it first; the others find it held, or the work done, and look
    again at their next poll. The work stays owed until it is marked done, so an edit whose
    collector died before or while it re-judged (or one applied at a collector's start) is
    re-judged by the next that can, and never twice."""
    service, leases = running.service, running.store.coordination
    if await service.in_db(lambda: leases.done_through(REJUDGE_LEASE)) >= version:
        return
    lease = await service.in_db(
        lambda: leases.take_lease(REJUDGE_LEASE, holder, service.now(), REJUDGE_HOLD)
    )
    if lease is None:
        return

    def mark() -> None:
        with leases.under(lease, service.now):  # only while the lease is still this one's
            leases.mark_done(REJUDGE_LEASE, version, holder)

    try:
        # Looked at again under the lease: a collector that held it may just have done it.
        if await service.in_db(lambda: leases.done_through(REJUDGE_LEASE)) >= version:
            return
        # Each device's verdicts are written under the lease, and the writes renew it: a
        # collector paused past it (or slower than its hour between two devices) stops at
        # its next write, and the one that took it over re-judges.
        devices = await service.apply_policy(service.policy, lease)
        await service.in_db(mark)
    except LeaseLost as lost:
        log.warning("re-judging the fleet under policy version %d stopped: %s", version, lost)
        return
    finally:
        await service.in_db(lambda: leases.release(lease))
    log.info("policy version %d applied; %d device(s) re-evaluated", version, devices)


def _settle() -> None:
    """Serving has started: every part of the store loaded now (what it serves later, the
    dashboard's reads and alerts among them), then all of it frozen out of the garbage
    collector's walks (`gc_settle.settled`)."""
    load_parts()
    settled()


async def serve_forever(
    config: CollectorConfig,
    enroll_port: int | None,
    report_port: int | None,
    host: str | None,
    ready_file: Path | None,
    *,
    admin_port: int | None = None,
    metrics_port: int | None = None,
    web_port: int | None = None,
    worker: int | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully. As a `worker` of `serve
    --workers` (collector/workers.py): the agent ports are shared, the parent holds the data
    folder, and only worker 0 serves administration, metrics and the dashboard."""
    if metrics_port is None and config.metrics_enabled:
        metrics_port = config.metrics_port
    if web_port is None and config.web_enabled:
        web_port = config.web_port
    if admin_port is None:
        admin_port = config.admin_port
    if worker:  # workers 1, 2, …: reports only
        admin_port = metrics_port = web_port = None
    running = await start(
        config, enroll_port, report_port, host, admin_port=admin_port,
        metrics_port=metrics_port, web_port=web_port, share_agent_ports=worker is not None,
        lock_data=worker is None, writer_process=config.report_writer == "process",
        policy_file=not worker,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _settle()
    print(
        f"devposture collector serving: enrollment on port {running.enroll_port},"
        f" reports on port {running.report_port}"
        # A worker of `serve --workers` other than the first serves the agent ports alone.
        + (f", administration on port {running.admin_port}" if running.admin_port else "")
        + (f", dashboard at {running.dashboard.url}" if running.dashboard else ""),
        flush=True,
    )
    if ready_file is not None:
        temporary = ready_file.with_suffix(".tmp")
        temporary.write_text(
            json.dumps(
                {
                    "enroll_port": running.enroll_port,
                    "report_port": running.report_port,
                    "admin_port": running.admin_port,
                    "metrics_port": running.metrics_port,
                    "web_port": running.web_port,
                }
            )
        )
        temporary.replace(ready_file)
    # systemd (Type=notify): ready once every port is bound, then proof of life.
    notifier = Notifier()
    notifier.ready(serving_status(running))
    pinger = asyncio.create_task(ping_watchdog(notifier))
    # Worker 0 (or the only process) follows the policy file; every process follows the
    # version in force in the database.
    watcher = asyncio.create_task(watch_policy(config, running, stop, file=not worker))
    summary = asyncio.create_task(log_ingest(running, stop))
    days = asyncio.create_task(keep_fleet_days(running, stop, database=config.database))
    sealing = asyncio.create_task(keep_sealing(running, stop))
    # The per-device rate limit shared among the processes serving on the database.
    present = asyncio.create_task(keep_present(
        running, stop, config.presence_seconds,
        presence=None if worker is None else worker_presence(config, worker),
    ))  # fmt: skip
    healthy = asyncio.create_task(keep_health(running, stop))
    # What this data folder's ca/ holds, for a CA rollover run from any collector.
    holding = asyncio.create_task(
        keep_saying(config, running.store, running.service.in_db, stop, enabled=not worker)
    )
    # IT alert digests ([alerts]; nothing when no channel is set), by worker 0 (or the only
    # process), under their own lease.
    alerting = asyncio.create_task(keep_alerting(running, config, stop, enabled=not worker))
    await stop.wait()
    drain = f"; health answers NOT_SERVING for {running.drain_seconds:g} s first"
    notifier.notify("STOPPING=1", "STATUS=stopping" + (drain if running.drain_seconds > 0 else ""))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, running.cut_drain)  # a second signal skips the drain
    # The drain runs while the tasks end: the alerts' sending under way may end within it.
    draining = asyncio.create_task(running.drain())
    await watcher
    await summary
    await days
    await sealing
    await present
    await healthy
    await holding
    await alerting
    await draining
    print("devposture collector stopping", flush=True)
    try:
        await running.stop()
    finally:
        pinger.cancel()


def serving_status(running: RunningServer) -> str:
    """The STATUS= line `systemctl status` shows: every port this collector serves."""
    ports_served = [
        ("enrollment", running.enroll_port),
        ("reports", running.report_port),
        ("administration", running.admin_port),
        ("metrics", running.metrics_port),
        ("dashboard", running.web_port),
    ]
    return "serving: " + ", ".join(f"{name} port {p}" for name, p in ports_served if p)


async def ping_watchdog(notifier: Notifier) -> None:
    """WATCHDOG=1 at the service manager's interval while the collector runs, drain
    included. The pings come from the event loop itself: a loop stuck in a blocking call
    stops them, and the manager restarts the collector. Nothing when no watchdog is set."""
    interval = notifier.ping_interval()
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
