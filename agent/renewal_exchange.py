"""The certificate exchange itself: a new request over the device key, sent by Renew (mutual
TLS) or, for an expired certificate, by Reestablish (a signed proof on the enrollment port),
and the answer checked before it replaces anything.

Apart from agent.renewal, which decides *whether* to renew on every round without loading the
cryptography package; this module loads it, and only when a renewal happens.
"""

from __future__ import annotations

import datetime as dt

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent import __version__
from devposture.agent.enroll import certificate_problem, make_csr
from devposture.agent.state import AgentState, Enrollment, write_atomic
from devposture.agent.transport import open_channel
from devposture.net.address import CollectorAddress
from devposture.net.proxy import channel_options
from devposture.policy.cli_messages import Worded
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from devposture.v1.proofs import reestablish_payload

RENEW_DEADLINE_SECONDS = 30.0


class RenewalError(Worded):
    """The collector's answer cannot be used; the old certificate stays. Worded: `renew`
    shows it in the reader's language."""


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
    with grpc.secure_channel(target, credentials, options=channel_options(state.proxy)) as channel:
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
        raise RenewalError.as_is(problem)
    write_atomic(state.ca_path, response.ca_certificates_pem.encode("ascii"))
    write_atomic(state.cert_path, response.client_certificate_pem.encode("ascii"))
    return cert


def exchange(
    state: AgentState, enrollment: Enrollment, now: dt.datetime, *, expired: bool
) -> tuple[pb.RenewResponse, dt.datetime]:
    """Get and keep a new certificate; the answer and the new certificate's expiry. Raises
    grpc.RpcError or RenewalError, and then nothing was replaced."""
    key = _key(state)
    csr_pem = make_csr(key, enrollment.device_id).decode("ascii")
    if expired:
        response = _reestablish(state, enrollment, key, csr_pem, now)
    else:
        response = _renew(state, enrollment, csr_pem)
    fresh = _accept(state, enrollment, key, response)
    return response, fresh.not_valid_after_utc
