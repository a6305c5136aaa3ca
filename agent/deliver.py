"""One round of the agent's work: collect a report, keep it on disk, send what is queued.

Shared by `devposture-agent once` and the service loop, so both follow the same order: the
Wi-Fi session log is merged into the report, the report is written to the outbox before any
sending, and closed sessions are forgotten only once a report carrying them is acknowledged.

Collecting and sending are separate steps (`collect`, `deliver`): after a failed delivery the
service retries sending the backlog on its backoff schedule without collecting again.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from devposture.agent.collect import build_report
from devposture.agent.host import Host
from devposture.agent.notify.notifier import Notifier
from devposture.agent.outbox import DEFAULT_MAX_BYTES, Outbox
from devposture.agent.probes import ProbeConfig
from devposture.agent.public_status import publish
from devposture.agent.renewal import ensure_fresh_certificate
from devposture.agent.sessions import SessionLog
from devposture.agent.state import AgentState, Enrollment, StateError
from devposture.agent.transport import DrainResult, drain
from devposture.net.rpc_status import parse_description
from devposture.policy.cli_messages import Said
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Round:
    report: pb.PostureReport
    result: DrainResult

    @property
    def acknowledged(self) -> bool:
        return self.report.report_id in self.result.acknowledged + self.result.duplicates

    @property
    def device_refused(self) -> Said | None:
        """The collector's reason when it refuses this device itself (revoked or retired by
        IT, not enrolled there, a copied identity): PERMISSION_DENIED on the call. Sending
        again changes nothing until the device is enrolled again; None otherwise."""
        return _refused(self.result)


def outbox_bound(state: AgentState, override: int | None = None) -> int:
    """The outbox's size bound: an explicit override (`--outbox-max-mb`), else the collector's
    configuration when it names one, else the outbox's default."""
    if override:
        return override
    config = state.load_config()
    if config is not None and config.outbox_max_bytes:
        return int(config.outbox_max_bytes)
    return DEFAULT_MAX_BYTES


def open_outbox(state: AgentState, max_bytes: int | None = None) -> Outbox:
    return Outbox(state.outbox_dir, outbox_bound(state, max_bytes))


def collect(
    state: AgentState,
    enrollment: Enrollment,
    host: Host,
    config: ProbeConfig,
    trigger: pb.CollectionTrigger.ValueType,
    *,
    outbox: Outbox,
) -> pb.PostureReport:
    """Collect one report and put it in the outbox, stamped with the outbox's state just
    before it (the report itself not counted), from put's own scan: one scan a collection."""
    report = build_report(host, config, enrollment.device_id)
    report.trigger = trigger
    SessionLog(state.wifi_sessions_path, config.network_hash_key).apply(report)
    outbox.put(report, stamp_delivery=True)
    publish(state)  # one more report waits: the copy every user reads says so
    return report


def deliver(
    state: AgentState,
    enrollment: Enrollment,
    outbox: Outbox,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> DrainResult:
    """Send the backlog. Renews the certificate first when it is due, so a renewed one is the
    one the reports travel with; keeps the newest verdicts for `status`; forgets the Wi-Fi
    sessions an acknowledged report carried; publishes what `status` now shows for every
    user (agent.public_status)."""
    ensure_fresh_certificate(state, enrollment, utcnow())
    result = drain(state, enrollment, outbox, should_stop=should_stop)
    try:
        _remember(state, result)
    except OSError as exc:
        # A full or read-only state folder: the reports were delivered all the same. What is
        # lost is for `status` (the newest verdicts) or comes again (a closed Wi-Fi session
        # goes with the next report too, and the collector keeps it once).
        log.warning("what the collector answered cannot be kept in the state folder (%s)",
                    exc.strerror or exc)  # fmt: skip
    publish(state)
    return result


def _remember(state: AgentState, result: DrainResult) -> None:
    """Keep what a drain learned: the Wi-Fi sessions delivered, the verdicts, a refusal."""
    if result.newest_delivered is not None:
        SessionLog(state.wifi_sessions_path).acknowledged(result.newest_delivered)
    if result.verdicts is not None:
        state.save_verdicts(result.verdicts)
    refused = _refused(result)
    if refused is not None:
        state.save_refusal(refused, int(utcnow().timestamp() * 1_000_000))
    elif result.acknowledged or result.duplicates:
        state.clear_refusal()


def _refused(result: DrainResult) -> Said | None:
    """The collector's words when it refuses this device itself (PERMISSION_DENIED): worded
    for the reader when the collector sent them so, else its text as it is."""
    if result.stopped_by is None:
        return None
    code, detail = parse_description(result.stopped_by)
    if code is not grpc.StatusCode.PERMISSION_DENIED:
        return None
    return result.stopped_worded or Said(detail, as_is=True)


def collect_and_deliver(
    state: AgentState,
    enrollment: Enrollment,
    host: Host,
    config: ProbeConfig,
    trigger: pb.CollectionTrigger.ValueType = pb.COLLECTION_TRIGGER_MANUAL,
    *,
    outbox_max_bytes: int | None = None,
) -> Round:
    outbox = open_outbox(state, outbox_max_bytes)
    try:
        report = collect(state, enrollment, host, config, trigger, outbox=outbox)
    except OSError as exc:
        unwritable = state_unwritable(state, exc)
        if unwritable is None:
            raise
        # This round's report cannot be kept; what waits is still sent, and each report the
        # collector acknowledges frees its space (the round stopped before, and the disk
        # stayed full for good). On a read-only folder they reach the collector all the
        # same, and leave the outbox once it is writable again.
        deliver(state, enrollment, outbox)
        raise unwritable from exc
    return Round(report, deliver(state, enrollment, outbox))


def state_unwritable(state: AgentState, exc: OSError) -> StateError | None:
    """What a round that could not keep its report says when the state folder's disk is full
    (or its quota used) or read-only: the folder, and that what waits is sent (by `once` at
    once, by the service's send after it). None for another error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateError(
            "the disk holding the state folder {path} is full: this round's report was not"
            " kept (those waiting were sent). Free space on that disk; the agent tries again"
            " at its next round",
            path=state.directory,
        )
    if exc.errno == errno.EROFS:
        # Linux remounts a file system read-only after a disk error (ext4's errors=remount-ro).
        return StateError(
            "the state folder {path} is on a read-only file system: this round's report was"
            " not kept (those waiting were sent). The system makes a disk read-only after an"
            " error on it: have it checked and made writable again (a restart often does);"
            " the agent tries again at its next round",
            path=state.directory,
        )
    return None


class AgentWork:
    """What the service loop drives (agent.service.Work), for one enrolled agent."""

    def __init__(
        self,
        state: AgentState,
        enrollment: Enrollment,
        host: Host,
        probe_config: Callable[[], ProbeConfig],
        *,
        outbox_max_bytes: int | None = None,
        interval: float | None = None,
        default_interval: float = 3600.0,
        notifier: Notifier | None = None,
    ) -> None:
        self.state = state
        # Tells the employee on their desktop what the collector's verdicts say (service only).
        self._notifier = notifier
        self.enrollment = enrollment
        self.host = host
        self._probe_config = probe_config
        self._outbox_max_bytes = outbox_max_bytes
        self._interval = interval
        self._default_interval = default_interval

    def outbox(self) -> Outbox:
        # Built each time: the bound may change with a new configuration.
        return open_outbox(self.state, self._outbox_max_bytes)

    def collect(self, trigger: pb.CollectionTrigger.ValueType) -> pb.PostureReport:
        # The configuration may have changed with the last acknowledgement.
        try:
            return collect(
                self.state, self.enrollment, self.host, self._probe_config(), trigger,
                outbox=self.outbox(),
            )  # fmt: skip
        except OSError as exc:
            unwritable = state_unwritable(self.state, exc)
            if unwritable is None:
                raise
            # The service's log said "No space left on device" (or "Read-only file system")
            # in a traceback, naming neither the folder nor what to do; the send that follows
            # still goes out.
            raise unwritable from exc

    def send(self, should_stop: Callable[[], bool]) -> DrainResult:
        result = deliver(self.state, self.enrollment, self.outbox(), should_stop=should_stop)
        if self._notifier is not None:
            try:
                self._notifier.run(utcnow())
            except Exception:  # a notice is never worth a report
                log.exception("desktop notification failed; the next round retries")
        return result

    def interval(self) -> float:
        """Seconds between periodic collections: --interval, else the policy's, else 1 h."""
        if self._interval:
            return self._interval
        config = self.state.load_config()
        if config is not None and config.report_interval_seconds:
            return float(config.report_interval_seconds)
        return self._default_interval


def readdress_queue(state: AgentState, device_id: str) -> int:
    """Reports this computer collected under its previous enrollment and never delivered,
    made this enrollment's: they name the old device, which the collector refuses on the new
    certificate (PERMISSION_DENIED), and were set aside for good when the agent re-enrolled
    (a damaged agent.json's advice: "enroll again with --force"). They are this computer's
    facts, collected on it; each keeps its report id, so one already stored is acknowledged as
    a duplicate. Each is written again before its old copy goes: a crash between leaves both,
    and the old one is refused alone."""
    outbox = open_outbox(state)
    moved = 0
    for item in outbox.pending():
        if item.report.device_id == device_id:
            continue
        report = pb.PostureReport()
        report.CopyFrom(item.report)
        report.device_id = device_id
        if outbox.put(report) != item.path:
            outbox.remove(item)
        moved += 1
    return moved
