"""Enroll this computer with a collector: make a key here, get a certificate for it there.

The private key is generated on the device and never leaves it; the collector sees only a
certificate signing request. The token is sent only after the collector has proved it holds the
CA whose fingerprint IT gave (see `devposture.net.pinning`). Every connection goes through the
HTTPS proxy the state carries, if any.

A failure says whether trying again can help: `Unreachable` (nothing answered as the collector
at that address: try its next address, or later), `TryLater` (the collector answered and asks
to come back), or a plain `EnrollError` (the token was refused, the answer is unusable: trying
again with the same token changes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devposture.agent import __version__
from devposture.agent.enroll_diagnosis import diagnose
from devposture.agent.state import AgentState, Enrollment
from devposture.net.address import CollectorAddress
from devposture.net.pinning import PinningError, fetch_pinned_ca, fingerprint
from devposture.net.proxy import channel_options
from devposture.net.rpc_status import detail_of, retry_hint, status_of
from devposture.policy.cli_messages import Said, Worded, lines, said
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc

ENROLL_DEADLINE_SECONDS = 30.0


class EnrollError(Worded):
    """Enrollment failed; the message says why and what to do (worded in the reader's
    language, `Worded`; `str()` is the English the service logs)."""


class Unreachable(EnrollError):
    """Nothing answered as the collector at that address (down, blocked, or a machine that is
    not the collector): another of its addresses, or a later try, may work."""


class TryLater(EnrollError):
    """The collector answered and asks to come back later (pushback, a full disk, a restart);
    `retry_after` is its hint in seconds, when it gave one."""

    def __init__(
        self, english: str | Said, /, retry_after: float | None = None, **params: object
    ) -> None:
        super().__init__(english, **params)
        self.retry_after = retry_after


def make_csr(key: ec.EllipticCurvePrivateKey, hostname: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name(hostname))])
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


# A certificate name's longest: 64 bytes of UTF-8 (RFC 5280's ub-common-name, as cryptography
# counts it), not 64 characters: a Chinese host name's character takes three.
MAX_COMMON_NAME_BYTES = 64


def common_name(hostname: str) -> str:
    """The host name as a request's common name: cut to MAX_COMMON_NAME_BYTES between two
    characters ("device" for none). A computer named in Chinese past 21 characters ended its
    enrollment in a traceback."""
    cut = hostname.encode("utf-8")[:MAX_COMMON_NAME_BYTES].decode("utf-8", errors="ignore")
    return cut or "device"


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def certificate_problem(
    key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, device_id: str,
    cas: list[x509.Certificate],
) -> Said | None:  # fmt: skip
    """Why a certificate the collector issued to this device cannot be used, or None: it must
    hold our key, name our device id, and be signed by one of `cas`."""
    if not any(_issued_by(cert, ca) for ca in cas):
        return said("the collector returned a certificate not signed by a CA it is trusted for")
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if ours != theirs or not common_names or common_names[0].value != device_id:
        return said("the collector returned a certificate for another key or device")
    return None


def _explain_rpc_error(
    error: grpc.RpcError, address: CollectorAddress, ca_pem: bytes, state: AgentState
) -> EnrollError:  # fmt: skip
    # The collector's own refusal comes worded (trailing metadata), to be shown in this
    # reader's language; an older collector's is its text, shown as it is.
    code, detail = status_of(error)[0], detail_of(error)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return EnrollError("the collector refused the token: {detail}", detail=detail)
    hinted, after = retry_hint(error)
    if code == grpc.StatusCode.UNAVAILABLE and hinted:
        # The collector answered, and asks to come back later (a full disk, a restart).
        return TryLater("the collector at {target} asks to come back later: {detail}",
                        retry_after=after, target=address.target(), detail=detail)  # fmt: skip
    if code == grpc.StatusCode.UNAVAILABLE:
        # The collector's CA is pinned by now: one more connection can tell what is wrong.
        found = diagnose(address, ca_pem, proxy=state.proxy)
        if found is not None:
            return Unreachable(found)
        return Unreachable(
            "cannot reach the collector at {target} over TLS ({detail}). Check that"
            " `devposture-collector serve` is running and that this is its enrollment port"
            " (7443 by default), then try again",
            target=address.target(), detail=detail,
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return TryLater("the collector asks this address to slow down: {detail}",
                        retry_after=after, detail=detail)  # fmt: skip
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unreachable("the collector at {target} did not answer in time; try again",
                           target=address.target())  # fmt: skip
    return EnrollError("enrollment failed ({code}): {detail}",
                       code=code.name if code else "error", detail=detail)  # fmt: skip


def enroll(
    state: AgentState,
    address: CollectorAddress,
    token: str,
    ca_fingerprint: str,
    host: pb.HostInfo,
) -> Enrollment:
    """Run the whole enrollment; on success the state folder holds the new identity."""
    try:
        ca_pem = fetch_pinned_ca(address.host, address.port, ca_fingerprint, proxy=state.proxy)
    except PinningError as exc:  # nothing answered, or something that is not our collector
        raise Unreachable.as_is(exc) from exc
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    request = pb.EnrollRequest(
        token=token,
        csr_pem=make_csr(key, host.hostname).decode("ascii"),
        host=host,
        agent_version=__version__,
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = channel_options(state.proxy)
    with grpc.secure_channel(address.target(), credentials, options=options) as channel:
        try:
            response = pb_grpc.CollectorStub(channel).Enroll(
                request, timeout=ENROLL_DEADLINE_SECONDS
            )
        except grpc.RpcError as exc:
            raise _explain_rpc_error(exc, address, ca_pem, state) from exc

    cert = x509.load_pem_x509_certificate(response.client_certificate_pem.encode("ascii"))
    problem = certificate_problem(key, cert, response.device_id, [ca_cert])
    if problem is not None:
        raise EnrollError(problem)
    if not 0 < response.report_port < 65536:
        raise EnrollError("the collector did not say which port takes reports")

    enrollment = Enrollment(
        device_id=response.device_id,
        collector_host=address.host,
        enroll_port=address.port,
        report_port=response.report_port,
        ca_fingerprint=fingerprint(ca_cert),
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The answer came over a channel verified against the pinned CA, so the bundle it holds
    # (two CAs during a rollover) is as trustworthy; it must hold the pinned CA itself.
    bundle = response.ca_certificate_pem.encode("ascii")
    if ca_cert not in x509.load_pem_x509_certificates(bundle or ca_pem):
        bundle = ca_pem
    state.save(enrollment, key_pem, response.client_certificate_pem.encode("ascii"), bundle)
    return enrollment


def enroll_first(
    state: AgentState,
    addresses: Sequence[CollectorAddress],
    token: str,
    ca_fingerprint: str,
    host: pb.HostInfo,
) -> Enrollment:
    """Enroll at the first of `addresses` (one collector's names, e.g. its public name and its
    office address) that answers as the collector. Raises Unreachable when none does (naming
    each), and at once any other failure: the collector answered, so another of its addresses
    would answer the same."""
    state.check_writable()
    missed: list[Unreachable] = []
    for address in addresses:
        try:
            return enroll(state, address, token, ca_fingerprint, host)
        except Unreachable as exc:
            missed.append(exc)
    if len(missed) == 1:
        raise missed[0]
    head = said("none of the collector's {count} addresses answered:", count=len(missed))
    raise Unreachable(lines(head, *(each.said for each in missed), indent="  "))
