"""Keep this computer's client certificate fresh, by itself.

Certificates are short-lived (the collector's setting, two weeks by default), so a stolen key is
worth little for long. When about a third of the certificate's lifetime is left, the agent asks
for a new one over its current mutual-TLS channel (Renew), with the same key. A renewal that
fails keeps the old certificate and is tried again later, backing off with jitter. An agent
whose certificate already expired (the laptop was away, the collector was down) proves its key
on the enrollment port instead (Reestablish) and needs no new token, unless IT revoked it.

The new certificate and trust bundle replace the old ones atomically: a crash at any point
leaves a working pair, and the collector never counts an unused renewal against the device.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from dataclasses import dataclass
from enum import Enum

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.timestamp_pb2 import Timestamp

from agent import __version__
from agent.enroll import CollectorAddress, certificate_problem, make_csr
from agent.rpc_status import describe
from agent.state import AgentState, Enrollment, write_atomic
from agent.transport import open_channel
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from devposture.v1.proofs import reestablish_payload

log = logging.getLogger(__name__)

RENEW_DEADLINE_SECONDS = 30.0
# Renew when this share of the certificate's lifetime is left.
RENEW_WHEN_LEFT = 1 / 3
FIRST_RETRY = dt.timedelta(minutes=5)
LONGEST_RETRY = dt.timedelta(hours=6)
RENEWAL_FILE = "renewal.json"


class Outcome(Enum):
    NOT_DUE = "not due"
    BACKING_OFF = "backing off"
    RENEWED = "renewed"
    REESTABLISHED = "reestablished"
    FAILED = "failed"


@dataclass(frozen=True)
class RenewalResult:
    outcome: Outcome
    detail: str = ""
    expires_at: dt.datetime | None = None


class RenewalError(Exception):
    """The collector's answer cannot be used; the old certificate stays."""


def renewal_due(cert: x509.Certificate, now: dt.datetime) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now <= lifetime * RENEW_WHEN_LEFT


def retry_delay(failures: int, rng: random.Random | None = None) -> dt.timedelta:
    """Exponential backoff with full jitter between half and all of the step, so a fleet that
    failed together (the collector was down) does not come back together."""
    step: dt.timedelta = min(LONGEST_RETRY, FIRST_RETRY * 2 ** max(0, failures - 1))
    jitter = 0.5 + 0.5 * (rng or random).random()
    return step * jitter


def _load_backoff(state: AgentState) -> tuple[int, dt.datetime | None]:
    try:
        data = json.loads((state.directory / RENEWAL_FILE).read_text(encoding="utf-8"))
        return int(data["failures"]), dt.datetime.fromisoformat(data["next_attempt"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, None


def _save_backoff(state: AgentState, failures: int, next_attempt: dt.datetime | None) -> None:
    path = state.directory / RENEWAL_FILE
    if next_attempt is None:
        path.unlink(missing_ok=True)
        return
    payload = {"failures": failures, "next_attempt": next_attempt.isoformat()}
    write_atomic(path, json.dumps(payload).encode("utf-8"), 0o600)


def _key(state: AgentState) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(state.key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise RenewalError("the device key is not an ECDSA key: enroll again with --force")
    return key


def _renew(state: AgentState, enrollment: Enrollment, csr_pem: str) -> pb.RenewResponse:
    with open_channel(state, enrollment) as channel:
        response: pb.RenewResponse = pb_grpc.CollectorStub(channel).Renew(
            pb.RenewRequest(csr_pem=csr_pem, agent_version=__version__),
            timeout=RENEW_DEADLINE_SECONDS,
        )
    return response


def _reestablish(
    state: AgentState, enrollment: Enrollment, key: ec.EllipticCurvePrivateKey,
    csr_pem: str, now: dt.datetime,
) -> pb.RenewResponse:  # fmt: skip
    signed_at = Timestamp(seconds=int(now.timestamp()))
    cert = x509.load_pem_x509_certificate(state.cert_path.read_bytes())
    serial = format(cert.serial_number, "x")
    payload = reestablish_payload(enrollment.device_id, serial, signed_at.seconds, csr_pem)
    request = pb.ReestablishRequest(
        certificate_pem=state.cert_path.read_text(encoding="ascii"),
        csr_pem=csr_pem,
        signed_at=signed_at,
        signature=key.sign(payload, ec.ECDSA(hashes.SHA256())),
        agent_version=__version__,
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=state.ca_path.read_bytes())
    target = CollectorAddress(enrollment.collector_host, enrollment.enroll_port).target()
    with grpc.secure_channel(target, credentials) as channel:
        response: pb.RenewResponse = pb_grpc.CollectorStub(channel).Reestablish(
            request, timeout=RENEW_DEADLINE_SECONDS
        )
    return response


def _accept(
    state: AgentState, enrollment: Enrollment, key: ec.EllipticCurvePrivateKey,
    response: pb.RenewResponse,
) -> x509.Certificate:  # fmt: skip
    """Check the new certificate (our key, our id, signed by a CA of the new bundle) and keep
    it with the bundle. The bundle goes first: it always holds the old CA too during a
    rollover, so a crash between the two writes still leaves a working pair."""
    try:
        cert = x509.load_pem_x509_certificate(response.client_certificate_pem.encode("ascii"))
        cas = x509.load_pem_x509_certificates(response.ca_certificates_pem.encode("ascii"))
    except ValueError as exc:
        raise RenewalError("the collector's answer holds no valid certificate") from exc
    problem = certificate_problem(key, cert, enrollment.device_id, cas)
    if problem is not None:
        raise RenewalError(problem)
    write_atomic(state.ca_path, response.ca_certificates_pem.encode("ascii"))
    write_atomic(state.cert_path, response.client_certificate_pem.encode("ascii"))
    return cert


def ensure_fresh_certificate(
    state: AgentState, enrollment: Enrollment, now: dt.datetime, *, force: bool = False
) -> RenewalResult:
    """Renew (or reestablish) the certificate when it is due; never raises for a failure to
    reach or convince the collector: the old certificate stays and the attempt is retried."""
    cert = x509.load_pem_x509_certificate(state.cert_path.read_bytes())
    if not force and not renewal_due(cert, now):
        return RenewalResult(Outcome.NOT_DUE, expires_at=cert.not_valid_after_utc)
    failures, next_attempt = _load_backoff(state)
    if not force and next_attempt is not None and now < next_attempt:
        return RenewalResult(
            Outcome.BACKING_OFF, f"next attempt after {next_attempt:%Y-%m-%d %H:%M} UTC",
            cert.not_valid_after_utc,
        )  # fmt: skip
    expired = now >= cert.not_valid_after_utc
    try:
        key = _key(state)
        csr_pem = make_csr(key, enrollment.device_id).decode("ascii")
        if expired:
            response = _reestablish(state, enrollment, key, csr_pem, now)
        else:
            response = _renew(state, enrollment, csr_pem)
        fresh = _accept(state, enrollment, key, response)
    except (grpc.RpcError, RenewalError) as exc:
        detail = describe(exc) if isinstance(exc, grpc.RpcError) else str(exc)
        retry_at = now + retry_delay(failures + 1)
        _save_backoff(state, failures + 1, retry_at)
        log.warning(
            "certificate renewal failed (%s); keeping the current certificate,"
            " next attempt after %s", detail, retry_at.isoformat(timespec="minutes"),
        )  # fmt: skip
        return RenewalResult(Outcome.FAILED, detail, cert.not_valid_after_utc)
    _save_backoff(state, 0, None)
    outcome = Outcome.REESTABLISHED if expired else Outcome.RENEWED
    log.info("certificate %s, generation %d, valid until %s", outcome.value,
             response.generation, fresh.not_valid_after_utc.isoformat())  # fmt: skip
    return RenewalResult(outcome, f"generation {response.generation}", fresh.not_valid_after_utc)
