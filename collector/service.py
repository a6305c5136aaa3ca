"""The Collector gRPC service: enrollment and report ingest.

Two rules shape it. Identity comes from the channel (DESIGN principle 7): a report is accepted
only from the device its client certificate names. And a report is acknowledged only after it
is committed (principle 5): the ack is the agent's permission to delete its copy.

All database work runs on one dedicated thread, so the event loop never blocks on a disk sync
and SQLite sees a single writer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import grpc
from cryptography import x509
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.collector.agent_config import (
    add_verdicts,
    agent_config,
    verdict_templates,
    verdicts_digest,
)
from devposture.collector.clock import utcnow
from devposture.collector.device_refusals import device_refusal
from devposture.collector.enroll_refusals import worded_refusal
from devposture.collector.grace_deadlines import (
    deadlines_of_failures,
    grace_deadlines,
    needs_history,
)
from devposture.collector.ingest import (
    FULL_DISK_REASON,
    Committed,
    GroupCommitter,
    IngestClosed,
)
from devposture.collector.intake import (
    Refusal,
    facts_key,
    measure_skew,
    os_family_name,
    record_of,
    refusal,
)
from devposture.collector.log_every import LogEvery
from devposture.collector.metrics import IngestMetrics
from devposture.collector.pki import (
    CsrRejected,
    cert_pem,
    device_id_for_certificate,
    fingerprint,
)
from devposture.collector.ratelimit import DeviceRateLimiter, retry_after_ms
from devposture.collector.raw_rpc import RawRequest, Request, Undecodable, message_of
from devposture.collector.refused_writes import refusal_of
from devposture.collector.renewal import ProofRejected, verify_reestablish
from devposture.collector.report_writer import ReportWriter
from devposture.collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    StoreOutcome,
    TokenRejected,
    database_errors,
)
from devposture.collector.store.base import from_us
from devposture.collector.store.coordination import Lease
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.store.guesses import ENROLLMENT, GuessLedger
from devposture.collector.store.identity import (
    Admission,
    EnrollRefused,
    Verdict,
    changed_since,
    local_changes,
)
from devposture.collector.throttle import (
    FREE_FAILURES,
    MAX_LINE_SECONDS,
    WINDOW_SECONDS,
    Busy,
    FailureThrottle,
    peer_address,
)
from devposture.collector.tokens import TokenFormatError, parse_token
from devposture.collector.trust import Trust, TrustError
from devposture.policy import Policy
from devposture.policy.checks import CheckParameters, evaluate, utc
from devposture.policy.cli_messages import ERROR_METADATA, Said, said
from devposture.policy.time_zone import company_zone
from devposture.policy.verdict_memo import VerdictMemo
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=Message)

MAX_CSR_BYTES = 16 * 1024
# Most reports in one ReportBatch call (the proto's promise to agents).
MAX_BATCH = 64
# The shortest wait a pushed-back agent is told; the hint is spread up to twice this.
PUSH_BACK_MS = 5_000
# A group of reports the database failed to store (an outage, an I/O error): in both languages,
# as the other outage answers (collector/outage.py).
STORING_FAILED = "the collector could not store the report (采集器暂时无法保存报告)"
# A request's csr_pem missing or over MAX_CSR_BYTES.
ONE_REQUEST = said(
    "csr_pem must hold one PEM certificate request of at most {size} KiB",
    size=MAX_CSR_BYTES // 1024,
)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _timestamp(moment: dt.datetime) -> Timestamp:
    if moment.tzinfo is dt.UTC:  # the service's clock: FromDatetime's value, without its tuple
        since = moment - _EPOCH
        seconds = since.days * 86_400 + since.seconds
        return Timestamp(seconds=seconds, nanos=since.microseconds * 1000)
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


@dataclass(frozen=True)
class Peer:
    """Who is calling, as proved by the client certificate of the connection."""

    device_id: str
    serial: str
    # The certificate as presented, which the TLS layer verified: the collector tells which
    # of its CAs signed it when the database has not recorded that (`_issuer_of`).
    pem: bytes = field(default=b"", compare=False, repr=False)


def peer_of(context: grpc.aio.ServicerContext[object, object]) -> Peer | None:
    """The device proved by the caller's client certificate, or None without one.

    The TLS layer has already verified the certificate against a CA we trust; the id is
    recomputed from its public key rather than read from its subject.
    """
    pems = list(context.auth_context().get("x509_pem_cert", ()))
    if not pems:
        return None
    return _peer_of_certificate(pems[0])


@functools.lru_cache(maxsize=8192)
def _peer_of_certificate(pem: bytes) -> Peer:
    """Parsing a certificate costs more than the rest of admission; a device presents the same
    one for days, so the answer is kept (by the exact PEM bytes, which the TLS layer verified)."""
    cert = x509.load_pem_x509_certificate(pem)
    return Peer(device_id_for_certificate(cert), format(cert.serial_number, "x"), pem)


def _code_of(context: grpc.aio.ServicerContext[object, object]) -> grpc.StatusCode:
    """The status a failed call ends with: the code it was aborted with, or UNKNOWN (what
    gRPC answers for an exception)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    found = next((c for c in grpc.StatusCode if c.value[0] == code), None)
    return grpc.StatusCode.UNKNOWN if found is None or code is None else found


Q = TypeVar("Q")
R = TypeVar("R")
IdentityMethod = Callable[
    ["CollectorService", Q, grpc.aio.ServicerContext[object, object]], Awaitable[R]
]


def _identity_call(rpc: str) -> Callable[[IdentityMethod[Q, R]], IdentityMethod[Q, R]]:
    """Count the call in the metrics by the status it ends with. Enrollments, renewals and
    reestablishments were in no count: a guessing source, a rollout token gone stale or a
    fleet failing to renew showed only in the log."""

    def counting(method: IdentityMethod[Q, R]) -> IdentityMethod[Q, R]:
        @functools.wraps(method)
        async def counted(
            service: CollectorService, request: Q,
            context: grpc.aio.ServicerContext[object, object],
        ) -> R:  # fmt: skip
            try:
                answer = await method(service, request, context)
            except asyncio.CancelledError:
                service.metrics.identity_call(rpc, _ended_unanswered(context))
                raise
            except BaseException as exc:
                # A database error is answered UNAVAILABLE by the guard around the method.
                failed = isinstance(exc, database_errors())
                code = grpc.StatusCode.UNAVAILABLE if failed else _code_of(context)
                service.metrics.identity_call(rpc, code)
                raise
            service.metrics.identity_call(rpc, grpc.StatusCode.OK)
            return answer

        return counted

    return counting


async def _abort_worded(
    context: grpc.aio.ServicerContext[object, object], code: grpc.StatusCode, message: str | Said,
    trailing: tuple[tuple[str, str], ...] = (),
) -> NoReturn:  # fmt: skip
    """End the call with `code`: a sentence (`Said`) goes as its English, and worded in the
    trailing metadata for the agent to word in its reader's language; a text as it is.
    `trailing` goes beside (a retry hint)."""
    if isinstance(message, Said) and not message.as_is:
        wire = json.dumps(message.data(), sort_keys=True)
        trailing = ((ERROR_METADATA, wire), *trailing)
    await context.abort(code, str(message), trailing_metadata=trailing)
    raise AssertionError("abort returns only by raising")  # pragma: no cover


# How often the database's identity version is read (the bound on how long a device revoked
# by another process or collector may still report, besides a call already admitted).
ADMISSION_RECHECK_SECONDS = 0.1
# The longest an admission is answered from memory, whatever the version says: the bound on a
# certificate's first use written by another process going unseen here (clone detection).
ADMISSION_MAX_AGE_SECONDS = 60.0
# Entries kept at most (then all are dropped; a fleet reporting hourly keeps far fewer live).
ADMISSION_MAX_ENTRIES = 50_000


class AdmissionCache:
    """Admissions of allowed devices answered from memory instead of the database.

    Every Report and ReportBatch call is admitted (enrolled, not revoked or retired, not a
    clone); reading that from the database on every call was the costliest step of a call
    after gRPC itself. An allowed admission is kept per device (its one certificate serial)
    and dropped at once when:

    * this process writes an identity change of the device (`identity.local_changes`: the
      admin service revoking, an enrollment, renewal, a certificate's first use, a clone
      flagged; a change not of one device drops every device), so a revocation made here
      refuses the very next call;
    * the database's identity version moves with an event of the device
      (`Identity.version`: every enrollment, renewal, revocation, retirement and clone flag
      is a device event; more than a hundred new events drop every device), read at most
      every `recheck` seconds: a revocation by another process (the CLI, another collector
      on the same PostgreSQL database, a worker of `serve --workers`) refuses the device's
      calls admitted after at most `recheck` seconds (0.1 s);
    * it is `max_age` seconds old (60 s): a certificate's first use by another process
      writes no event, so an older certificate used here after a newer one was first used
      elsewhere (a clone) is caught within that time rather than at once. A newer
      certificate presented here is caught at once (a different serial is never answered
      from memory).

    Only ALLOWED is kept; refusals, first uses and clones always go to the database."""

    def __init__(
        self, reader: Store, *, recheck: float = ADMISSION_RECHECK_SECONDS,
        max_age: float = ADMISSION_MAX_AGE_SECONDS, max_entries: int = ADMISSION_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._reader = reader
        self._recheck = recheck
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        # device -> (serial, admission, when it was read)
        self._entries: dict[str, tuple[str, Admission, float]] = {}
        self._local = local_changes()
        self._version: int | None = None
        self._checked = -math.inf

    def get(self, device_id: str, serial: str) -> Admission | None:
        """The device's admission if it is known to be ALLOWED, else None (read it)."""
        now = self._clock()
        local = local_changes()
        if local != self._local:
            self._forget(changed_since(self._local))
            self._local = local
        if now - self._checked >= self._recheck:
            version = self._reader.identity.version()
            self._checked = now
            if version != self._version:
                known = self._version
                self._forget(None if known is None else self._reader.identity.changed_since(known))
                self._version = version
        entry = self._entries.get(device_id)
        if entry is None or entry[0] != serial or now - entry[2] >= self._max_age:
            return None
        return entry[1]

    def _forget(self, devices: set[str] | None) -> None:
        """Drop what is known of `devices` (of every device: None)."""
        if devices is None:
            self._entries.clear()
            return
        for device_id in devices:
            self._entries.pop(device_id, None)

    def mark(self) -> int:
        """Taken before reading an admission: `keep` uses it to tell whether an identity
        write of this process for that device ended while it was read."""
        return local_changes()

    def keep(self, device_id: str, serial: str, admission: Admission, mark: int) -> None:
        """Remember an admission read since `get` (and `mark`) said nothing had changed."""
        if admission.verdict is not Verdict.ALLOWED or self._version is None:
            return
        if local_changes() != mark:  # identity writes of this process ended meanwhile
            since = changed_since(mark)
            if since is None or device_id in since:
                return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[device_id] = (serial, admission, self._clock())


@dataclass(frozen=True)
class _Judging:
    """The policy in force and what follows from it, swapped as one."""

    policy: Policy
    params: CheckParameters
    check_ids: frozenset[str]
    agent_config: pb.AgentConfig
    templates: dict[str, pb.CheckVerdict]
    # (check, state, reason) -> that verdict as an acknowledgement's bytes carry it.
    encoded: dict[tuple[str, str, str], bytes] = field(default_factory=dict)

    @functools.cached_property
    def memo(self) -> VerdictMemo[CheckResult]:
        """Arriving reports judged, a verdict kept by the facts and the time's limits it
        was judged on (policy/verdict_memo.py)."""
        return VerdictMemo(
            self.params,
            self.check_ids,
            lambda c, v: CheckResult(c.check_id, v.state.value, v.reason),
        )

    @functools.cached_property
    def zone(self) -> dt.tzinfo:
        """The company's time zone: an older agent's English reason shows its times in it."""
        return company_zone(self.policy.time_zone)

    def verdict_bytes(self, results: list[CheckResult]) -> bytes:
        """`results` as the verdicts field of a ReportAck, in order (a check the policy no
        longer has is left out, as add_verdicts leaves it): each distinct verdict is built
        and encoded once per policy, then copied as bytes. Most of an acknowledgement is
        these (titles and remedies in two languages), and a fleet's verdicts repeat."""
        encoded = self.encoded
        parts = []
        for result in results:
            key = (result.check_id, result.state, result.reason)
            part = encoded.get(key)
            if part is None:
                one = pb.ReportAck()
                add_verdicts(self.templates, (result,), one.verdicts, self.zone)
                part = one.SerializeToString()
                if len(encoded) >= VERDICTS_KEPT:
                    encoded.clear()
                encoded[key] = part
            parts.append(part)
        return b"".join(parts)


# Distinct encoded verdicts kept, about 600 bytes each (reasons name packages, dates and
# networks, so a fleet's vary; when full, all are dropped and made again as they come).
VERDICTS_KEPT = 4096


class CollectorService(pb_grpc.CollectorServicer):
    def __init__(
        self,
        store: Store,
        trust: Trust,
        device_certificate_lifetime: dt.timedelta,
        policy: Policy,
        *,
        network_hash_key: bytes,
        clock: Callable[[], dt.datetime] = utcnow,
        device_calls_per_minute: int = 60,
        device_call_burst: int = 30,
        reader: Store | None = None,
        metrics: IngestMetrics | None = None,
        writer: ReportWriter | None = None,
    ) -> None:
        self._store = store
        # Report groups written by a process of their own (collector/report_writer.py), or
        # by the store's thread when None.
        self._writer = writer
        # Ingest counters and latencies (the metrics endpoint serves them, when there is one).
        self.metrics = metrics if metrics is not None else IngestMetrics()
        # Called once when shutdown begins (the health service turns NOT_SERVING).
        self.on_shutdown: list[Callable[[], None]] = []
        # Admission reads on the event loop through their own connection: a call is not kept
        # waiting behind a group commit's disk sync just to learn its device is allowed; and
        # an allowed device's admission is answered from memory (AdmissionCache).
        self._reader = reader
        self.admissions = AdmissionCache(reader) if reader is not None else None
        # Per-device token buckets for Report: a flooding device waits, others do not.
        self._limiter = DeviceRateLimiter(device_calls_per_minute, device_call_burst)
        self._hash_key = network_hash_key
        self._set_policy(policy)
        self._trust = trust
        # Which CA signed a presented certificate, asked once per certificate whose CA the
        # database did not record (issued before schema 28): a few signature checks.
        self._issuer_of = functools.lru_cache(maxsize=4096)(self._find_issuer)
        self._lifetime = device_certificate_lifetime
        self._clock = clock
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devposture-store")
        # Failed enrollments counted in the database: every collector and worker on it slows
        # a guessing source down alike (store/guesses.py).
        self._throttle = FailureThrottle(
            clock=time.time, run=self._in_db,
            ledger=GuessLedger(store.guesses, ENROLLMENT, WINDOW_SECONDS),
            max_line_seconds=MAX_LINE_SECONDS,
        )  # fmt: skip
        self._committer = GroupCommitter(
            store, self._in_db, write=writer.store_reports if writer is not None else None
        )
        self._shutting_down = False
        self._storing_failed = LogEvery()
        # Set once the report port is bound (it may be ephemeral).
        self.report_port = 0

    def _set_policy(self, policy: Policy) -> None:
        # One assignment: a report being judged sees the old policy or the new, never a mix.
        self._judging = self.judging_by(policy)

    def judging_by(self, policy: Policy) -> _Judging:
        """What this service judges and answers agents with under `policy` (raises what
        building it raises: an edit is tried with it before it is published)."""
        return _Judging(
            policy,
            CheckParameters.from_values({c.check_id: c.parameters for c in policy.checks}),
            frozenset(c.check_id for c in policy.checks),
            agent_config(policy, self._hash_key),
            verdict_templates(policy),
        )

    @property
    def policy(self) -> Policy:
        return self._judging.policy

    def _judge(self, report: pb.PostureReport, now: dt.datetime) -> list[CheckResult]:
        params, check_ids = self._judging.params, self._judging.check_ids
        return [
            CheckResult(c.check_id, v.state.value, v.reason)
            for c, v in evaluate(report, now, params, check_ids)
        ]

    def use_policy(self, policy: Policy) -> None:
        """Judge by `policy` from now on, without judging the fleet again: another collector
        on the same database applied it and re-judges (collector/policy/in_force.py)."""
        self._set_policy(policy)

    async def apply_policy(self, policy: Policy, lease: Lease | None = None) -> int:
        """Use `policy` from now on and judge every device's latest report again under it (not
        one the retention policy deleted). Returns how many devices were re-evaluated. Under
        `lease` (the re-judging's, server._rejudge_owed), each device's write checks the
        lease first and renews it as the work goes on: LeaseLost stops the work."""
        self._set_policy(policy)

        def reevaluate() -> int:
            latest = self._store.reports.latest_reports()
            now = self._clock()
            judged_again = 0
            fence = nullcontext() if lease is None else self._store.coordination.under(
                lease, self._clock
            )  # fmt: skip
            with fence:
                for device_id, report_id, collected, body in latest:
                    if not body:
                        # Deleted under the retention policy (a retired device's last report):
                        # its facts are gone, and its verdicts stand as they were judged.
                        continue
                    report = pb.PostureReport.FromString(body)
                    # Judged at its own collection time, as on arrival (see _intake).
                    judged = self._judge(report, utc(report.collected_at))
                    self._store.reports.replace_results(device_id, report_id, collected, now,
                                                        judged)  # fmt: skip
                    judged_again += 1
            return judged_again

        return await self._in_db(reevaluate)

    async def in_db(self, work: Callable[[], T]) -> T:
        """Run `work` on the store's thread (the one writer), for the server's own tasks."""
        return await self._in_db(work)

    async def _in_db(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, work)

    @property
    def limiter(self) -> DeviceRateLimiter:
        """The per-device rate limit of the report port (its share: server.keep_present)."""
        return self._limiter

    def now(self) -> dt.datetime:
        """The service's clock (the metrics judge STALE by it, as ingest does)."""
        return self._clock()

    @property
    def committer(self) -> GroupCommitter:
        return self._committer

    def begin_shutdown(self) -> None:
        """From now on new reports are pushed back (UNAVAILABLE with a retry hint); reports
        already taken are still committed and acknowledged."""
        if self._shutting_down:
            return
        self._shutting_down = True
        for hook in self.on_shutdown:
            hook()

    async def aclose(self) -> None:
        """Commit what is queued, then stop the store's thread."""
        self.begin_shutdown()
        await self._committer.close()
        self._db.shutdown(wait=True)
        if self._writer is not None:
            self._writer.close()

    def close(self) -> None:
        """Stop the store's thread (for a service whose event loop is gone; see `aclose`)."""
        self._db.shutdown(wait=True)
        if self._writer is not None:
            self._writer.close()

    @_identity_call("Enroll")
    async def Enroll(
        self, request: Request[pb.EnrollRequest], context: grpc.aio.ServicerContext[object, object]
    ) -> pb.EnrollResponse:
        async with self._throttled(context) as address:
            decoded = await self._decoded(context, request, f"enrollment from {address}", address)
            try:
                return await self._enroll(decoded, context, address)
            except StorageFull as full:  # rolled back whole: the token is not used up
                await self._full_disk(context, "enroll", full)

    async def _enroll(
        self, request: pb.EnrollRequest, context: grpc.aio.ServicerContext[object, object],
        address: str,
    ) -> pb.EnrollResponse:  # fmt: skip
        try:
            token = parse_token(request.token)
        except TokenFormatError as exc:
            await self._refuse(context, address, grpc.StatusCode.UNAUTHENTICATED, exc.said)
        if not request.csr_pem or len(request.csr_pem) > MAX_CSR_BYTES:
            await _abort_worded(context, grpc.StatusCode.INVALID_ARGUMENT, ONE_REQUEST)
        try:
            # The CA this collector's data folder signs with now, recorded with the
            # certificate: another collector's folder may sign with another (a rollover).
            authority = self._trust.signing_authority()
            device_id, cert = authority.sign_device_csr(
                request.csr_pem.encode("ascii", "replace"), self._lifetime
            )
        except CsrRejected as exc:  # counted: anyone may call this port, as often as it likes
            await self._refuse(context, address, grpc.StatusCode.INVALID_ARGUMENT, exc.said)
        host = request.host
        record = DeviceRecord(
            device_id=device_id,
            cert_serial=format(cert.serial_number, "x"),
            cert_not_after=cert.not_valid_after_utc,
            hostname=host.hostname[:255],
            os_family=os_family_name(host.os_family),
            os_name=host.os_name[:255],
            os_version=host.os_version[:255],
            agent_version=request.agent_version[:64],
            issuer=fingerprint(authority.cert),
        )
        try:
            await self._in_db(lambda: self._store.identity.enroll(token, self._clock(), record))
        except EnrollRefused as exc:
            await self._refuse(context, address, grpc.StatusCode.PERMISSION_DENIED,
                               worded_refusal(str(exc)))  # fmt: skip
        except TokenRejected as exc:
            log.warning("enrollment refused for token %s: %s", token.token_id, exc)
            await self._refuse(context, address, grpc.StatusCode.UNAUTHENTICATED,
                               worded_refusal(str(exc), self._judging.zone))  # fmt: skip
        log.info("enrolled device %s with token %s", device_id, token.token_id)
        return pb.EnrollResponse(
            device_id=device_id,
            client_certificate_pem=cert_pem(cert).decode("ascii"),
            ca_certificate_pem=self._trust.trusted_ca_pem().decode("ascii"),
            report_port=self.report_port,
        )

    @property
    def throttle(self) -> FailureThrottle:
        """The enrollment port's throttle (tests give it a clock and read its turns)."""
        return self._throttle

    @asynccontextmanager
    async def _throttled(
        self, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[str]:
        """The caller's address, holding its turn: its attempts are taken one at a time, and
        after too many failures each waits first (`collector/throttle.py`). An address with
        too many attempts at once is told to come back (RESOURCE_EXHAUSTED with a hint)."""
        address = peer_address(context.peer())
        try:
            async with self._throttle.attempt(address):
                yield address
        except Busy as busy:
            hint = retry_after_ms(busy.retry_after)
            if busy.first:
                log.warning("too many enrollment attempts at once from %s: turning some away",
                            address)  # fmt: skip
            await _abort_worded(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                said("too many enrollment attempts from {address} at once: retry in {seconds} s,"
                     " one at a time", address=address, seconds=f"{hint / 1000:.0f}"),
                (("retry-after-ms", str(hint)),),
            )  # fmt: skip

    async def _refuse(
        self, context: grpc.aio.ServicerContext[object, object], address: str,
        code: grpc.StatusCode, message: str | Said,
    ) -> NoReturn:  # fmt: skip
        """Refuse an enrollment or reestablishment, counting it against the address. A
        sentence (`Said`) goes as its English, and worded in the trailing metadata for the
        agent to word in its reader's language."""
        failures = await self._throttle.record_failure(address)
        if failures >= FREE_FAILURES:
            log.warning(
                "%d failed enrollments from %s within %d minutes: slowing it down",
                failures, address, int(WINDOW_SECONDS // 60),
            )  # fmt: skip
        await _abort_worded(context, code, message)

    async def _decoded(
        self, context: grpc.aio.ServicerContext[object, object], request: Request[M],
        caller: str, address: str | None = None,
    ) -> M:  # fmt: skip
        """The request's message, decoded once the call is admitted (collector/raw_rpc.py).
        Bytes that are no such message are refused with INVALID_ARGUMENT saying what is
        wrong, in one log line; on the enrollment port (`address`) that is a failed attempt."""
        try:
            return message_of(request)
        except Undecodable as exc:
            log.warning("%s refused: %s", caller, exc)
            if address is not None:
                await self._refuse(context, address, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("abort returns only by raising")  # pragma: no cover

    @_identity_call("Renew")
    async def Renew(
        self, request: Request[pb.RenewRequest], context: grpc.aio.ServicerContext[object, object]
    ) -> pb.RenewResponse:
        peer = await self._admit(context)
        renewal = await self._decoded(context, request, f"device {peer.device_id}: Renew call")
        cert, issuer = await self._sign(context, renewal.csr_pem, peer.device_id)
        try:
            generation = await self._in_db(
                lambda: self._store.identity.record_renewal(
                    peer.device_id, format(cert.serial_number, "x"), cert.not_valid_after_utc,
                    self._clock(), action="renewed", issuer=issuer,
                )
            )  # fmt: skip
        except StorageFull as full:  # not recorded, so not handed out: the old one still holds
            await self._full_disk(context, "renew its certificate", full)
        log.info("renewed the certificate of device %s (generation %d)", peer.device_id, generation)
        return self._renewed(cert, generation)

    @_identity_call("Reestablish")
    async def Reestablish(
        self, request: Request[pb.ReestablishRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.RenewResponse:  # fmt: skip
        async with self._throttled(context) as address:
            decoded = await self._decoded(
                context, request, f"reestablishment from {address}", address
            )
            try:
                return await self._reestablish(decoded, context, address)
            except StorageFull as full:  # rolled back whole; the agent signs a new proof
                await self._full_disk(context, "reestablish its identity", full)

    async def _reestablish(
        self, request: pb.ReestablishRequest, context: grpc.aio.ServicerContext[object, object],
        address: str,
    ) -> pb.RenewResponse:  # fmt: skip
        now = self._clock()
        try:
            proven = verify_reestablish(request, self._trust.trusted_cas(), now)
        except ProofRejected as exc:
            await self._refuse(context, address, grpc.StatusCode.UNAUTHENTICATED, exc.said)
        presented = request.certificate_pem.encode("ascii", "replace")
        # The certificate presented here, as one presented on the report port: a row whose
        # CA is not recorded (issued before schema 28) gets it, so that `ca rollover` counts it.
        admission = await self._in_db(
            lambda: self._store.identity.admit(
                proven.device_id, proven.serial, now, issuer=lambda: self._issuer_of(presented)
            )
        )
        refusal = device_refusal(proven.device_id, admission, self._judging.zone)
        if refusal is not None:
            log.warning("refused to reestablish device %s: %s", proven.device_id,
                        admission.verdict.value)  # fmt: skip
            await self._refuse(context, address, grpc.StatusCode.PERMISSION_DENIED, refusal)
        fresh = await self._in_db(
            lambda: self._store.identity.accept_reestablish_signature(
                proven.device_id, proven.signed_at
            )
        )
        if not fresh:
            await self._refuse(
                context, address, grpc.StatusCode.UNAUTHENTICATED,
                said("this proof is not newer than the last one accepted (a replay?): sign a"
                     " new one"),
            )  # fmt: skip
        cert, issuer = await self._sign(context, request.csr_pem, proven.device_id)
        generation = await self._in_db(
            lambda: self._store.identity.record_renewal(
                proven.device_id, format(cert.serial_number, "x"), cert.not_valid_after_utc,
                now, action="reestablished", issuer=issuer,
            )
        )  # fmt: skip
        log.info("reestablished device %s (generation %d)", proven.device_id, generation)
        return self._renewed(cert, generation)

    async def _sign(
        self, context: grpc.aio.ServicerContext[object, object], csr_pem: str, device_id: str
    ) -> tuple[x509.Certificate, str]:
        """A new certificate for `device_id` from a request over that device's own key, and
        the fingerprint of the CA that signed it (this data folder's signing CA now)."""
        if not csr_pem or len(csr_pem) > MAX_CSR_BYTES:
            await _abort_worded(context, grpc.StatusCode.INVALID_ARGUMENT, ONE_REQUEST)
        try:
            authority = self._trust.signing_authority()
            signed_id, cert = authority.sign_device_csr(
                csr_pem.encode("ascii", "replace"), self._lifetime
            )
        except CsrRejected as exc:
            await _abort_worded(context, grpc.StatusCode.INVALID_ARGUMENT, exc.said)
        if signed_id != device_id:
            await _abort_worded(
                context, grpc.StatusCode.PERMISSION_DENIED,
                said("the renewal request is over another key than the device's: a renewal"
                     " keeps the key; to change keys, enroll again"),
            )  # fmt: skip
        return cert, fingerprint(authority.cert)

    def _find_issuer(self, pem: bytes) -> str | None:
        """The fingerprint of the CA of this data folder that signed the certificate `pem`
        (presented, so verified by one the collector trusts), or None when none verifies it
        or it cannot be read: its CA then stays not recorded."""
        try:
            return self._trust.issuer_of(x509.load_pem_x509_certificate(pem))
        except (OSError, ValueError, TrustError) as exc:  # its text may name a file: not logged
            log.warning("cannot tell which CA signed a presented certificate (%s)",
                        type(exc).__name__)  # fmt: skip
            return None

    def _renewed(self, cert: x509.Certificate, generation: int) -> pb.RenewResponse:
        return pb.RenewResponse(
            client_certificate_pem=cert_pem(cert).decode("ascii"),
            ca_certificates_pem=self._trust.trusted_ca_pem().decode("ascii"),
            generation=generation,
        )

    async def _admit(self, context: grpc.aio.ServicerContext[object, object]) -> Peer:
        """The calling device, if it may call at all: within its rate, enrolled, not revoked
        or retired, and not presenting a certificate older than one already in use (a clone)."""
        peer = peer_of(context)
        if peer is None:
            await _abort_worded(
                context, grpc.StatusCode.UNAUTHENTICATED,
                said("this call needs the device's client certificate: send it to the report"
                     " port over mutual TLS"),
            )  # fmt: skip
        # Before any database work: a flooding device costs the others nothing.
        wait = self._limiter.acquire(peer.device_id)
        if wait > 0:
            hint = retry_after_ms(wait)
            limiter = self._limiter
            rate = dict(device=peer.device_id, calls=f"{limiter.calls_per_minute:g}",
                        burst=limiter.burst, seconds=f"{hint / 1000:.1f}")  # fmt: skip
            too_often = (
                said("device {device} is calling too often (at most {calls} calls a minute,"
                     " {burst} in a burst, this collector's share of {serving} serving): retry"
                     " in {seconds} s", serving=limiter.serving, **rate)
                if limiter.serving > 1
                else said("device {device} is calling too often (at most {calls} calls a"
                          " minute, {burst} in a burst): retry in {seconds} s", **rate)
            )  # fmt: skip
            await _abort_worded(context, grpc.StatusCode.RESOURCE_EXHAUSTED, too_often,
                                (("retry-after-ms", str(hint)),))  # fmt: skip
        cache = self.admissions
        admission = None if cache is None else cache.get(peer.device_id, peer.serial)
        if admission is not None:
            return peer

        def issuer() -> str | None:
            return self._issuer_of(peer.pem) if peer.pem else None

        now = self._clock()
        if self._reader is not None and cache is not None:
            mark = cache.mark()
            admission = self._reader.identity.admit(
                peer.device_id, peer.serial, now, read_only=True, issuer=issuer
            )
            if admission is not None:
                cache.keep(peer.device_id, peer.serial, admission, mark)
        if admission is None:  # a first use or a clone to record: the writer decides
            try:
                admission = await self._in_db(
                    lambda: self._store.identity.admit(
                        peer.device_id, peer.serial, now, issuer=issuer
                    )
                )
            except StorageFull as full:  # nothing was written; the call is pushed back
                await self._push_back(context, self._committer.disk_full(full))
        refusal = device_refusal(peer.device_id, admission, self._judging.zone)
        if refusal is not None:  # worded for the agent's reader, as enrollment's refusals
            log.warning("refused device %s: %s", peer.device_id, admission.verdict.value)
            await _abort_worded(context, grpc.StatusCode.PERMISSION_DENIED, refusal)
        return peer

    def _accepting(self) -> str | None:
        """Why reports cannot be taken right now (shutting down, too far behind), or None."""
        if self._shutting_down:
            return "the collector is restarting"
        if self._committer.overloaded():
            return f"the collector is busy ({self._committer.waiting} reports waiting to be stored)"
        return None

    async def _push_back(
        self, context: grpc.aio.ServicerContext[object, object], why: str,
        kept: str = "your reports are kept",
    ) -> NoReturn:  # fmt: skip
        """UNAVAILABLE with a retry hint: the agent keeps its reports (or what `kept` says)
        and comes back later. The hint is spread so that a fleet told to wait does not return
        all at once."""
        hint = int(PUSH_BACK_MS * (1 + random.random()))  # noqa: S311 (jitter, not a secret)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"{why}: {kept}; retry in {hint / 1000:.1f} s",
            trailing_metadata=(("retry-after-ms", str(hint)),),
        )
        raise AssertionError("abort returns only by raising")  # pragma: no cover

    async def _full_disk(
        self, context: grpc.aio.ServicerContext[object, object], what: str, full: StorageFull
    ) -> NoReturn:
        """An enrollment or certificate call whose write the full disk refused: pushed back as
        reports are, and counted in the same one log line (the admin side is told where the
        disk is; the caller only that it is full)."""
        self._committer.disk_full(full)
        await self._push_back(
            context, f"the collector cannot {what} now (its disk is full)", "nothing was used up"
        )

    async def _commit(
        self, context: grpc.aio.ServicerContext[object, object],
        items: list[tuple[ReportRecord, list[CheckResult]]],
    ) -> Committed:  # fmt: skip
        """Store through the group committer; an outcome exists only once it is committed."""
        try:
            return await self._committer.store(items)
        except IngestClosed:
            await self._push_back(context, "the collector is restarting")
        except StorageFull:  # rolled back whole, logged once by the committer
            await self._push_back(context, FULL_DISK_REASON)
        except Exception as exc:  # nothing of the failed group may be acknowledged
            since = self._storing_failed.due()  # through an outage, a line every few seconds
            refused = refusal_of(exc)  # a read-only database: what it is and what to do
            if since is not None and refused is not None:
                log.error("storing %d report(s) failed: %s; %s%s", len(items),
                          refused.problem, refused.fix, since)  # fmt: skip
            elif since is not None:
                log.error("storing %d report(s) failed: %s%s", len(items), type(exc).__name__,
                          since)  # fmt: skip
            # With a retry hint, as every other pushback: an agent (or any gRPC client) told
            # only "retry later" came back at its own pace through an outage.
            await self._push_back(context, STORING_FAILED, "it is kept on your computer")
        raise AssertionError("abort returns only by raising")  # pragma: no cover

    def _intake(
        self, report: pb.PostureReport, device_id: str, received_at: dt.datetime,
        skew: dt.timedelta | None,
    ) -> Refusal | tuple[ReportRecord, list[CheckResult]]:  # fmt: skip
        """A report as the store keeps it, with its verdicts; or why it is refused."""
        # Serialized once: stored as it is, and less its id and time the key by which a
        # report like one seen is validated and judged from memory.
        body = report.SerializeToString(deterministic=True)
        key = facts_key(body)
        refused = refusal(report, device_id, received_at, skew, key)
        if refused is not None:
            log.warning("device %s: report refused (%s)", device_id, refused.code.name)
            return refused
        record = record_of(report, device_id, received_at, skew, body)
        # Judged at its own collection time: a fact's age is measured on one clock, the
        # agent's, whatever its skew, and a report from a backlog is judged as of its moment.
        results = self._judging.memo.judge(report, key, utc(report.collected_at))
        return record, results

    async def _as_stored(
        self, record: ReportRecord, results: list[CheckResult]
    ) -> list[CheckResult]:
        """The verdicts of a duplicate's report as it was stored. An agent that retries sends
        the same bytes, and its verdicts are `results`; a report id sent again with other
        facts (a client's bug, or a try to show an employee a pass) is acknowledged with what
        the collector kept, which is what IT's reports show. When the stored report cannot be
        read, `results` (the report is stored and acknowledged all the same)."""
        report_id = record.report_id
        try:
            if self._reader is not None:  # on the loop, as admission reads
                body = self._reader.reports.report_body(report_id)
            else:
                body = await self._in_db(lambda: self._store.reports.report_body(report_id))
        except database_errors() as exc:
            log.warning("report %s: the stored report not read: %s", report_id, type(exc).__name__)
            return results
        if not body or body == record.body:  # not stored, pruned, or the same facts
            return results
        log.warning("device %s sent report %s again with other facts: the stored report stands",
                    record.device_id, report_id)  # fmt: skip
        kept = pb.PostureReport.FromString(body)
        return self._judge(kept, utc(kept.collected_at))

    def _ack(self, record: ReportRecord, outcome: StoreOutcome) -> pb.ReportAck:
        return pb.ReportAck(
            report_id=record.report_id,
            duplicate=outcome is StoreOutcome.DUPLICATE,
            stored_at=_timestamp(record.received_at),
        )

    async def _add_verdicts(
        self, ack: pb.ReportAck, record: ReportRecord, results: list[CheckResult],
        held: dict[str, int] | None, verdicts_held: bytes,
    ) -> None:  # fmt: skip
        """The verdicts the employee sees, with their grace deadlines, on the acknowledgement
        of a device's newest report; only their digest when the agent holds these already
        (`verdicts_held`): a steady device's verdicts repeat, and with their titles and
        remedies in two languages they were most of every acknowledgement's bytes."""
        encoded = self._judging.verdict_bytes(results)
        failing = [r.check_id for r in results if r.state == "FAIL"]
        deadlines = await self._grace_deadlines(record, failing, held)
        ack.verdicts_digest = verdicts_digest(encoded, deadlines)
        if verdicts_held and verdicts_held == ack.verdicts_digest:
            ack.verdicts_unchanged = True
            return
        ack.MergeFromString(encoded)
        for verdict in ack.verdicts:
            deadline = deadlines.get(verdict.check_id)
            if deadline is not None:
                verdict.grace_until.CopyFrom(_timestamp(deadline))

    async def _grace_deadlines(
        self, record: ReportRecord, failing: list[str], held: dict[str, int] | None
    ) -> dict[str, dt.datetime]:
        """When the grace period of each `failing` check ends, from the device's history as
        just stored: the employee is told the date IT's reports show. `held`: what the store
        said as it wrote the report (check -> since when its state holds), for a report that
        was its device's newest; else (a duplicate, an older report) the history is read,
        only when a failing check has a grace period. A failed read leaves the dates out (the
        report is stored and acknowledged all the same)."""
        policy = self._judging.policy
        if not needs_history(policy, failing):
            return {}
        if held is not None:  # the report's FAIL verdicts are its device's last states
            began = {c: from_us(held[c]) for c in failing if c in held}
            return deadlines_of_failures(policy, began, failing)
        # The history is dated by collection time, at most a day ahead of receipt.
        device_id, until = record.device_id, record.received_at + dt.timedelta(days=1)
        try:
            if self._reader is not None:  # on the loop, as admission reads
                changes = self._reader.device_pages.changes(device_id, until)
            else:
                changes = await self._in_db(
                    lambda: self._store.device_pages.changes(device_id, until)
                )
        except database_errors() as exc:
            log.warning("device %s: grace deadlines not read: %s", device_id, type(exc).__name__)
            return {}
        return grace_deadlines(policy, changes, failing)

    async def _counted(
        self, rpc: str, request: Request[pb.ReportRequest] | Request[pb.ReportBatchRequest],
        context: grpc.aio.ServicerContext[object, object], call: Awaitable[T],
    ) -> T:  # fmt: skip
        """Run one report call, counting a refusal of the whole call by its status code (each
        report of a refused batch counts, see `_reports_in`) and an acknowledgement's
        latency."""
        started = time.perf_counter()
        try:
            answer = await call
        except asyncio.CancelledError:  # the agent went away: not a refusal, but counted
            self.metrics.gave_up(rpc, _ended_unanswered(context), _reports_in(request))
            raise
        except BaseException:
            code = _code_of(context)
            if code is not grpc.StatusCode.OK:
                self.metrics.refused(rpc, code, _reports_in(request))
            raise
        elapsed = time.perf_counter() - started
        if isinstance(answer, pb.ReportAck):
            duplicate = int(answer.duplicate)
            self.metrics.acknowledged(rpc, 1 - duplicate, duplicate, elapsed)
        elif isinstance(answer, pb.ReportBatchResponse):
            duplicate = sum(1 for ack in answer.acks if ack.duplicate)
            self.metrics.acknowledged(rpc, len(answer.acks) - duplicate, duplicate, elapsed)
            self.metrics.refusals(rpc, (r.code for r in answer.rejections))
        return answer

    async def Report(
        self, request: Request[pb.ReportRequest], context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ReportAck:
        return await self._counted("Report", request, context, self._report(request, context))

    async def ReportBatch(
        self, request: Request[pb.ReportBatchRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ReportBatchResponse:  # fmt: skip
        return await self._counted(
            "ReportBatch", request, context, self._report_batch(request, context)
        )

    async def _admit_reporter(self, context: grpc.aio.ServicerContext[object, object]) -> Peer:
        """The calling device, once the collector takes reports at all (it is not stopping,
        nor too far behind: then UNAVAILABLE with a retry hint)."""
        busy = self._accepting()
        if busy is not None:
            await self._push_back(context, busy)
        return await self._admit(context)

    def _arrival(
        self, request: pb.ReportRequest | pb.ReportBatchRequest
    ) -> tuple[dt.datetime, dt.timedelta | None]:
        """When the request arrived (collector's clock) and the agent's clock skew then."""
        received_at = self._clock()
        sent_at = request.sent_at if request.HasField("sent_at") else None
        return received_at, measure_skew(sent_at, received_at)

    async def _report(
        self, raw: Request[pb.ReportRequest], context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ReportAck:
        peer = await self._admit_reporter(context)
        request = await self._decoded(context, raw, f"device {peer.device_id}: Report call")
        if not request.HasField("report"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request holds no report")
        received_at, skew = self._arrival(request)
        intake = self._intake(request.report, peer.device_id, received_at, skew)
        if isinstance(intake, Refusal):
            await context.abort(intake.code, intake.message)
        record, results = intake
        committed = await self._commit(context, [intake])
        (outcome,) = committed.outcomes
        if outcome is StoreOutcome.CONFLICT:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, _conflict(record))
        log.debug("report %s from device %s: %s", record.report_id, peer.device_id, outcome.value)
        if outcome is StoreOutcome.DUPLICATE:
            results = await self._as_stored(record, results)
        ack = self._ack(record, outcome)
        await self._add_verdicts(
            ack, record, results, committed.held.get(record.report_id), request.verdicts_held
        )
        if request.config_version != self._judging.agent_config.version:
            ack.config.CopyFrom(self._judging.agent_config)
        return ack

    async def _report_batch(
        self, raw: Request[pb.ReportBatchRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ReportBatchResponse:  # fmt: skip
        # One admission (and one rate-limit token) for the batch: a backlog drains in few calls.
        peer = await self._admit_reporter(context)
        request = await self._decoded(context, raw, f"device {peer.device_id}: ReportBatch call")
        if len(request.reports) > MAX_BATCH:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a batch holds at most {MAX_BATCH} reports, not {len(request.reports)}",
            )
        received_at, skew = self._arrival(request)
        response = pb.ReportBatchResponse()
        accepted: list[tuple[ReportRecord, list[CheckResult]]] = []
        for report in request.reports:
            intake = self._intake(report, peer.device_id, received_at, skew)
            if isinstance(intake, Refusal):
                response.rejections.add(
                    report_id=report.report_id[:64], code=intake.code.value[0],
                    message=intake.message,
                )  # fmt: skip
            else:
                accepted.append(intake)
        committed = await self._commit(context, accepted) if accepted else Committed([], {})
        outcomes = committed.outcomes
        stored: list[tuple[ReportRecord, list[CheckResult], StoreOutcome]] = []
        for (record, results), outcome in zip(accepted, outcomes, strict=True):
            if outcome is StoreOutcome.CONFLICT:
                response.rejections.add(
                    report_id=record.report_id, code=grpc.StatusCode.ALREADY_EXISTS.value[0],
                    message=_conflict(record),
                )  # fmt: skip
            else:
                stored.append((record, results, outcome))
        # Only the newest report's acknowledgement carries the verdicts the employee sees.
        newest = max((s[0] for s in stored), key=lambda r: r.collected_at, default=None)
        for record, results, outcome in stored:
            response.acks.append(self._ack(record, outcome))
            if record is newest:
                if outcome is StoreOutcome.DUPLICATE:
                    results = await self._as_stored(record, results)  # noqa: PLW2901
                await self._add_verdicts(
                    response.acks[-1], record, results, committed.held.get(record.report_id),
                    request.verdicts_held,
                )  # fmt: skip
        log.debug(
            "batch from device %s: %d stored or known, %d refused",
            peer.device_id, len(response.acks), len(response.rejections),
        )  # fmt: skip
        if request.config_version != self._judging.agent_config.version:
            response.config.CopyFrom(self._judging.agent_config)
        return response


# A caller's deadline ends its call on the caller's side first: the cancellation it sends
# reaches the collector a moment before the collector's own copy of that deadline, which
# counts from when the call arrived (the call's transit later). Ended this close to it, the
# call ended by its deadline; a caller that gives up by itself seldom does so this close.
DEADLINE_SLACK_SECONDS = 0.25


def _ended_unanswered(context: grpc.aio.ServicerContext[object, object]) -> grpc.StatusCode:
    """Why a call was cancelled before its answer: its deadline passed, or the caller (or
    the server stopping) cancelled it. Such calls were in no count at all: a collector too
    slow for its agents' deadlines showed nothing in its metrics, not even in the latency.
    A call ended within DEADLINE_SLACK_SECONDS of its deadline is the deadline's: held to
    the deadline alone, a call its caller's deadline ended was counted as cancelled, its
    caller's cancellation arriving first."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _reports_in(request: Request[pb.ReportRequest] | Request[pb.ReportBatchRequest]) -> int:
    """How many reports a refused call counts for: a batch, each of its reports (one when it
    cannot be decoded); a Report call, one (never decoded just to be counted)."""
    batch: Message | None = None
    if not isinstance(request, RawRequest):
        batch = request
    elif request.kind is pb.ReportBatchRequest:
        batch = request.decodable()
    return len(batch.reports) if isinstance(batch, pb.ReportBatchRequest) else 1


def _conflict(record: ReportRecord) -> str:
    return f"report id {record.report_id} is already stored for another device"
