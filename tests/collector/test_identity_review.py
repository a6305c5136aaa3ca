"""An adversarial review of enrollment, device identity and the PKI, over real TLS: what an
attacker or a careless administrator tries, and what the collector answers.

Found wrong and fixed here: a failed enrollment over IPv6 was counted against gRPC's spelling of
the peer ("%5B2001:db8::5%5D"), not against the address's /64, so a host taking a new address of
its /64 for every guess was never slowed down. Found right, and held so: a one-use token
enrolls one device however many race for it, on one collector or several on one database; a
weak or odd key is refused before the token is spent; a request asking for CA rights, a server
usage or another device's name gets a client certificate for its own key only."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devposture.agent.enroll import make_csr
from devposture.agent.transport import open_channel
from devposture.collector import server as collector_server
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.datadir import initialize
from devposture.collector.pki import device_id_for_public_key
from devposture.collector.store import DeviceRecord, Store, TokenRejected
from devposture.collector.store.guesses import ENROLLMENT
from devposture.collector.throttle import peer_address, source
from devposture.collector.tokens import new_token
from devposture.net.pinning import fingerprint
from devposture.net.rpc_status import describe, described, worded_trailer
from devposture.policy.cli_messages import Said
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, host_info
from tests.databases import collector_database, fresh_database

BAD_TOKEN = "dpt_0123456789abcdef_" + "A" * 43


def _enroll_port(collector: LiveCollector) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(collector.config.ca_cert.read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{collector.enroll_port}", credentials)


def _enroll(collector: LiveCollector, token: str, csr: str) -> pb.EnrollResponse:
    with _enroll_port(collector) as channel:
        answer: pb.EnrollResponse = pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=csr, host=host_info()), timeout=30
        )
    return answer


def _refused(collector: LiveCollector, token: str, csr: str) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as refused:
        _enroll(collector, token, csr)
    assert isinstance(refused.value, grpc.Call)
    return refused.value


def _csr_pem(key: CertificateIssuerPrivateKeyTypes, *, subject: str = "device",
             extensions: list[x509.ExtensionType] | None = None) -> str:  # fmt: skip
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    )
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=True)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


# --- throttling by source ------------------------------------------------------------------


def test_grpcs_spelling_of_an_ipv6_peer_is_read_as_its_address() -> None:
    """grpcio (1.85 here) percent-encodes an IPv6 peer's brackets: "ipv6:%5B::1%5D:47148"."""
    assert peer_address("ipv6:%5B2001:db8:1:2::5%5D:51234") == "2001:db8:1:2::5"
    assert peer_address("ipv6:%5B::ffff:10.1.2.3%5D:51234") == "::ffff:10.1.2.3"
    assert peer_address("ipv6:%5B::1%5D:47148") == "::1"
    # The /64 is one source whichever address of it a guess comes from.
    one = source(peer_address("ipv6:%5B2001:db8:1:2::5%5D:51234"))
    other = source(peer_address("ipv6:%5B2001:db8:1:2:ffff::9%5D:40000"))
    assert one == other == "2001:db8:1:2::/64"
    assert source(peer_address("ipv6:%5B::ffff:10.1.2.3%5D:1")) == "10.1.2.3"


@pytest.fixture
def ipv6_collector(tmp_path: Path) -> Iterator[LiveCollector]:
    """A collector serving on [::1] (the server certificate `init` makes names ::1)."""
    config, ca_cert = initialize(tmp_path / "collector", "::1", database=collector_database())
    config = dataclasses.replace(config, drain_seconds=0.0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-collector-v6", daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(
        collector_server.start(config, 0, 0, "::1"), loop
    ).result(30)
    try:
        yield LiveCollector(
            config, fingerprint(ca_cert), running.enroll_port, running.report_port, loop, running
        )
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0.5), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_failed_enrollment_over_ipv6_counts_against_the_address(
    ipv6_collector: LiveCollector,
) -> None:
    """The throttle's turn and the shared ledger (every collector reads it) name the address;
    they named "%5B::1%5D", which no /64 grouping could read."""
    credentials = grpc.ssl_channel_credentials(ipv6_collector.config.ca_cert.read_bytes())
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "guesser").decode()
    target = f"[::1]:{ipv6_collector.enroll_port}"
    options = [("grpc.ssl_target_name_override", "localhost")]
    with (
        grpc.secure_channel(target, credentials, options=options) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=BAD_TOKEN, csr_pem=csr), timeout=30
        )
    assert isinstance(refused.value, grpc.Call)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    turns = list(ipv6_collector.service.throttle.turns)
    assert [t.address for t in turns] == ["::1"]
    store = ipv6_collector.store()
    try:
        assert len(store.guesses.recent(ENROLLMENT, "::1", 0)) == 1
    finally:
        store.close()


# --- what a request may ask for ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 1024), id="rsa-1024"),
        pytest.param(lambda: rsa.generate_private_key(65537, 3072), id="rsa-3072"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP192R1()), id="p-192"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), id="secp256k1"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, id="ed25519"),
    ],
)
def test_a_weak_or_odd_key_is_refused_before_the_token_is_spent(
    live_collector: LiveCollector, key: object
) -> None:
    token = live_collector.token()
    made = key()  # type: ignore[operator]
    refused = _refused(live_collector, token, _csr_pem(made))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "P-256 or P-384" in (refused.details() or "")
    # The token still enrolls a computer with a proper key.
    assert _enroll(live_collector, token, _csr_pem(ec.generate_private_key(ec.SECP384R1())))


def test_a_request_for_ca_rights_a_server_usage_or_another_name_gets_a_client_certificate(
    live_collector: LiveCollector,
) -> None:
    victim = "0" * 32
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr_pem(key, subject=victim, extensions=[
        x509.BasicConstraints(ca=True, path_length=None),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                     x509.UniformResourceIdentifier(
                                         f"urn:devposture:device:{victim}")]),
    ])  # fmt: skip
    answer = _enroll(live_collector, live_collector.token(), csr)
    cert = x509.load_pem_x509_certificate(answer.client_certificate_pem.encode())
    own = device_id_for_public_key(key.public_key())
    assert answer.device_id == own != victim
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == own
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(names.get_values_for_type(x509.DNSName)) == []
    assert list(names.get_values_for_type(x509.UniformResourceIdentifier)) == [
        f"urn:devposture:device:{own}"
    ]


# --- one use, however many race for it -----------------------------------------------------


def test_a_one_use_token_raced_by_many_enrollments_enrolls_one(
    live_collector: LiveCollector,
) -> None:
    token = live_collector.token(uses=1)
    csrs = [make_csr(ec.generate_private_key(ec.SECP256R1()), f"pc-{n}").decode()
            for n in range(8)]  # fmt: skip
    start = threading.Barrier(len(csrs))

    def attempt(csr: str) -> grpc.StatusCode:
        with _enroll_port(live_collector) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            start.wait(timeout=30)
            try:
                pb_grpc.CollectorStub(channel).Enroll(
                    pb.EnrollRequest(token=token, csr_pem=csr, host=host_info()), timeout=30
                )
            except grpc.RpcError as exc:
                assert isinstance(exc, grpc.Call)
                return exc.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(len(csrs)) as pool:
        codes = list(pool.map(attempt, csrs))
    assert sorted(c.name for c in codes) == ["OK"] + ["UNAUTHENTICATED"] * (len(csrs) - 1)
    store = live_collector.store()
    try:
        assert len(store.identity.devices()) == 1
        assert [t.uses_left for t in store.identity.tokens()] == [0]
    finally:
        store.close()


def test_a_one_use_token_raced_through_several_collectors_on_one_database_enrolls_one(
    tmp_path: Path,
) -> None:
    """Each store is a collector's own connection (on PostgreSQL, several collectors; on
    SQLite, the workers of `serve --workers`)."""
    target = fresh_database(tmp_path)
    stores = [Store.open(target) for _ in range(4)]
    try:
        token, now = new_token(), utcnow()
        stores[0].identity.add_token(token, now, now + dt.timedelta(hours=1), uses=1)
        start = threading.Barrier(len(stores))

        def attempt(n: int) -> str:
            record = DeviceRecord(f"{n:032x}", f"{n + 1:x}", now + dt.timedelta(days=14))
            start.wait(timeout=30)
            try:
                stores[n].identity.enroll(token, now, record)
            except TokenRejected as exc:
                return str(exc)
            return "enrolled"

        with ThreadPoolExecutor(len(stores)) as pool:
            outcomes = list(pool.map(attempt, range(len(stores))))
        assert outcomes.count("enrolled") == 1, outcomes
        assert all("used up" in o for o in outcomes if o != "enrolled"), outcomes
        assert len(stores[0].identity.devices()) == 1
        assert [t.uses_left for t in stores[0].identity.tokens()] == [0]
    finally:
        for store in stores:
            store.close()


# --- what a device names itself, on IT's terminal ------------------------------------------

# A host name that, printed raw, moves the cursor up and erases the line above it (a failing
# device's row hidden from IT), sets the terminal's title, and turns the text right to left.
HOSTILE_HOSTNAME = "pc-7\x1b[1A\x1b[2K\x1b]0;owned\x07\u202eevil\r\t"


def _controls(text: str) -> list[str]:
    """The characters a terminal acts on rather than shows (a line's end aside)."""
    return [ch for ch in text if ch != "\n" and (unicodedata.category(ch) == "Cc"
                                                   or ch in "\u202a\u202b\u202c\u202d\u202e"
                                                   "\u2066\u2067\u2068\u2069")]  # fmt: skip


def test_a_hostname_with_control_characters_is_shown_escaped_not_obeyed(
    live_collector: LiveCollector, capsys: pytest.CaptureFixture[str]
) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "pc-7").decode()
    with _enroll_port(live_collector) as channel:
        answer = pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=live_collector.token(), csr_pem=csr,
                             host=host_info(HOSTILE_HOSTNAME)), timeout=30,
        )  # fmt: skip
    data = str(live_collector.config.data_dir)
    for command in (["device", "list"], ["device", "show", answer.device_id]):
        assert collector_cli([*command, "--data", data]) == 0
        out = capsys.readouterr().out
        assert _controls(out) == [], command
        assert "pc-7\\x1b[1A\\x1b[2K\\x1b]0;owned\\x07\\u202eevil\\r\\t" in out, command
    # Files for programs keep the name as the device sent it (JSON escapes it itself).
    assert collector_cli(["device", "list", "--format", "json", "--data", data]) == 0
    assert HOSTILE_HOSTNAME in json.loads(capsys.readouterr().out)[0].values()


# --- every refusal in the reader's words ----------------------------------------------------


def _worded(call: grpc.Call) -> Said:
    """The refusal as the collector sent it for the agent to word: its English is the status's
    details (what an older agent shows) and it is a sentence, not a text as it is."""
    sentence = worded_trailer(call)
    assert sentence is not None, call.details()
    assert not sentence.as_is
    assert str(sentence) == call.details()
    return sentence


def test_a_refused_key_renewal_and_proof_are_sent_worded(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """They reached a Chinese reader in English (`enrollment failed (INVALID_ARGUMENT): device
    keys must be ECDSA …`), where the token's refusals beside them were worded."""
    weak = _refused(live_collector, live_collector.token(),
                    _csr_pem(rsa.generate_private_key(65537, 1024)))  # fmt: skip
    assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _worded(weak).english == "device keys must be ECDSA (P-256 or P-384)"
    curve = _refused(live_collector, live_collector.token(),
                     _csr_pem(ec.generate_private_key(ec.SECP192R1())))  # fmt: skip
    assert _worded(curve).params == {"curve": "secp192r1"}
    empty = _refused(live_collector, live_collector.token(), "")
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "csr_pem" in str(_worded(empty))

    other = make_csr(ec.generate_private_key(ec.SECP256R1()), "x").decode()
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as renewal,
    ):
        pb_grpc.CollectorStub(channel).Renew(pb.RenewRequest(csr_pem=other), timeout=30)
    assert isinstance(renewal.value, grpc.Call)
    assert renewal.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "another key" in str(_worded(renewal.value))
    # What the agent tells the employee of a failed renewal (agent/renewal.py): the collector's
    # worded refusal in Chinese, the code and gRPC's English text as they were for English.
    told = described(renewal.value)
    assert told.worded("en") == describe(renewal.value)
    assert told.worded("zh") == (
        "PERMISSION_DENIED：续期请求使用的不是本设备的密钥：续期不更换密钥；如需更换密钥，请重新注册"
    )

    proof = pb.ReestablishRequest(
        certificate_pem=agent.state.cert_path.read_text(encoding="ascii"),
        csr_pem=make_csr(ec.generate_private_key(ec.SECP256R1()), "x").decode(),
    )
    with _enroll_port(live_collector) as channel, pytest.raises(grpc.RpcError) as reestablish:
        pb_grpc.CollectorStub(channel).Reestablish(proof, timeout=30)
    assert isinstance(reestablish.value, grpc.Call)
    assert reestablish.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "own key" in str(_worded(reestablish.value))


def test_an_expired_token_is_refused_with_its_time_in_the_company_zone(
    live_collector: LiveCollector,
) -> None:
    """It said "expired at 2026-12-03T08:00:00+00:00", UTC in ISO form, where every other
    time the employee and IT read is the company's (Beijing by default)."""
    token, expired = new_token(), dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
    store = live_collector.store()
    try:
        store.identity.add_token(token, expired - dt.timedelta(hours=2), expired, uses=1)
    finally:
        store.close()
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "pc").decode()
    refused = _refused(live_collector, str(token), csr)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    sentence = _worded(refused)
    assert "expired at 2026-12-03 16:00 (UTC+08:00)" in str(sentence)
    assert "2026-12-03 16:00（UTC+08:00）" in sentence.worded("zh")
