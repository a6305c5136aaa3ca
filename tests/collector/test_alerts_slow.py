"""A receiver that answers one byte at a time holds an attempt only up to the attempt's whole
deadline (connect, TLS, sending, the answer), not for as long as it keeps each read under its
own limit; one slow channel does not hold another's delivery; a stopping collector does not
wait for an attempt past its drain.

Real servers on loopback, written here on raw sockets (HTTP, SMTP, TLS): each answers one byte
per send up to where the test stops it, then holds until the test releases it, so that what
happens depends on events, never on how fast the machine is. The deadline is data: half a
second for the attempt, an hour for each read (`SLOW`), so that only the whole deadline can
end a stalled attempt; where nothing may time out, an hour for both (`PATIENT`). The guard
(`GUARD_SECONDS`) only ends a hung test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devposture.collector.alerts import channels
from devposture.collector.alerts.deadline import Limits
from devposture.collector.alerts.delivery import Backoff, deliver_due, on_own_thread
from devposture.collector.alerts.digest import compose
from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.alerts.task import keep_alerting
from devposture.collector.store import Store
from devposture.policy import default_policy
from tests.collector.alert_fleet import NOW, device, enroll, report, settings
from tests.collector.alert_receivers import http_receiver
from tests.conftest import running_collector
from tests.databases import fresh_database
from tests.waiting import wait_until

GUARD_SECONDS = 60.0
SLOW = Limits(attempt=0.5, operation=3600.0)
PATIENT = Limits(attempt=3600.0, operation=3600.0)
TOO_SLOW = "too slow: no complete answer within 0.5 s"
POLICY = default_policy()
BACKOFF = Backoff()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
    b'Connection: close\r\n\r\n{"errcode":0}'
)
# Where a receiver stops answering: within the status line, the headers, the body.
HTTP_STALLS = {
    "status line": len(b"HTTP/1.1 2"),
    "headers": ANSWER.index(b"Content-Length") + 4,
    "body": len(ANSWER) - 4,
}


@dataclass
class Receiver:
    """A server on loopback: what it was sent, when a whole request arrived, and the event
    that lets it finish its answers."""

    port: int
    requests: list[bytes] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


Conversation = Callable[[socket.socket, Receiver], None]


@contextlib.contextmanager
def receiver(talk: Conversation, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """Each connection accepted runs `talk` on a thread of its own (over TLS with `tls`);
    released and closed when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    served = Receiver(listener.getsockname()[1])
    threads: list[threading.Thread] = []

    def handle(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:  # the client gave up: its deadline
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is None:
                talk(conn, served)
                return
            with tls.wrap_socket(conn, server_side=True) as secure:
                talk(secure, served)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # shut down: the block ended
                return
            thread = threading.Thread(target=handle, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, name="slow-receiver", daemon=True)
    acceptor.start()
    try:
        yield served
    finally:
        served.release.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        listener.close()
        acceptor.join(10)
        for thread in threads:
            thread.join(10)


def _trickle(conn: socket.socket, data: bytes) -> None:
    """`data`, one byte per send."""
    for byte in data:
        conn.sendall(bytes([byte]))


def _read_until(conn: socket.socket, marker: bytes, kept: bytes = b"") -> bytes:
    while marker not in kept:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        kept += chunk
    return kept


def http_stalling(at: int | None) -> Conversation:
    """Reads a whole request, answers 200 one byte at a time and stops after `at` bytes until
    released (None: answers at once, whole)."""

    def talk(conn: socket.socket, r: Receiver) -> None:
        got = _read_until(conn, b"\r\n\r\n")
        head, _, body = got.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))  # fmt: skip
        while len(body) < length:
            body += conn.recv(4096)
        r.requests.append(body)
        r.arrived.set()
        if at is None:
            conn.sendall(ANSWER)
            return
        _trickle(conn, ANSWER[:at])
        r.release.wait()
        conn.sendall(ANSWER[at:])

    return talk


def silent(conn: socket.socket, r: Receiver) -> None:
    """Takes the connection and says nothing (a TLS handshake never answered)."""
    r.arrived.set()
    r.release.wait()


def smtp_stalling(stage: str, starttls: ssl.SSLContext | None = None) -> Conversation:
    """A mail server answering one byte at a time that stops in its greeting ("greeting") or
    in its answer to the message ("message") until released (any other `stage`: never);
    offering STARTTLS with `starttls`."""
    ehlo = b"250-slow.example\r\n250 STARTTLS\r\n" if starttls else b"250 slow.example\r\n"
    answers = {"EHLO": ehlo, "HELO": b"250 slow.example\r\n", "MAIL": b"250 OK\r\n",
               "RCPT": b"250 OK\r\n", "DATA": b"354 go on\r\n", "QUIT": b"221 bye\r\n",
               "STAR": b"220 go ahead\r\n"}  # fmt: skip

    def say(conn: socket.socket, r: Receiver, answer: bytes, stall: bool) -> None:
        if not stall:
            _trickle(conn, answer)
            return
        _trickle(conn, answer[:5])
        r.release.wait()
        conn.sendall(answer[5:])

    def talk(conn: socket.socket, r: Receiver) -> None:
        say(conn, r, b"220 slow.example ESMTP\r\n", stage == "greeting")
        kept = b""
        while True:
            kept = _read_until(conn, b"\r\n", kept)
            line, _, kept = kept.partition(b"\r\n")
            verb = line[:4].decode().upper()
            if verb == "QUIT":
                _trickle(conn, answers["QUIT"])
                return
            say(conn, r, answers.get(verb, b"502 no\r\n"), False)
            if verb == "STAR" and starttls is not None:
                conn = starttls.wrap_socket(conn, server_side=True)
                kept = b""
            if verb == "DATA":
                kept = _read_until(conn, b"\r\n.\r\n", kept)
                message, _, kept = kept.partition(b"\r\n.\r\n")
                r.requests.append(message)
                r.arrived.set()
                say(conn, r, b"250 queued\r\n", stage == "message")

    return talk


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(fresh_database(tmp_path))
    yield store
    store.close()


def _failing(store: Store, n: int, hostname: str, at: dt.datetime) -> None:
    """Device `n` failing its firewall past its grace at `at`."""
    enroll(store, device(n))
    report(store, device(n), hostname, at - dt.timedelta(hours=5), {"firewall": "FAIL"})
    report(store, device(n), hostname, at - dt.timedelta(seconds=1), {"firewall": "FAIL"})


def _deliver(
    store: Store, found: dict[str, channels.Channel], at: dt.datetime,
) -> list[tuple[str, channels.Attempt]]:  # fmt: skip
    """`deliver_due` at `at`, on a thread of the test's (the store is used there only), its
    attempts on threads of their own; fails, rather than hangs, past the guard."""
    done: list[list[tuple[str, channels.Attempt]]] = []

    def run() -> None:
        done.append(asyncio.run(deliver_due(store, found, at, backoff=BACKOFF,
                                            io=on_own_thread)))  # fmt: skip

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    assert done, f"the delivery did not end within {GUARD_SECONDS:g} s"
    return done[0]


def _compose(store: Store, s: AlertSettings, at: dt.datetime = NOW) -> None:
    _failing(store, 1, "laptop-wang", at)
    assert compose(store, POLICY, s, at) is not None


@pytest.mark.parametrize("stall", list(HTTP_STALLS))
def test_a_webhook_answering_byte_by_byte_is_cut_at_the_attempt_s_deadline_and_retried(
    store: Store, tmp_path: Path, stall: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Each read had 10 s and none the attempt: a receiver sending a byte every 9 s held the
    # alert loop for minutes, and every alert behind it.
    with receiver(http_stalling(HTTP_STALLS[stall])) as hook:
        s = settings(tmp_path, webhook=hook.url)
        _compose(store, s)
        with caplog.at_level(logging.WARNING):
            ((name, attempt),) = _deliver(store, channels.configured(s, limits=SLOW), NOW)
        (body,) = hook.requests
    assert b'"schema": "devposture.alert-digest"' in body  # the receiver had the digest
    assert (name, attempt.delivered, attempt.retry, attempt.problem) == (
        "webhook", False, True, TOO_SLOW
    )
    assert store.alerts.deliveries() == [("webhook", "pending", 1, TOO_SLOW)]
    assert f"could not send the digest to webhook ({TOO_SLOW}); trying again in 60 s" in (
        caplog.text
    )


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A TLS server context for 127.0.0.1 and the file of the CA that signed it."""
    now = dt.datetime.now(dt.UTC)

    def signed(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
               signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )  # fmt: skip
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver test CA")])
    ca = signed("receiver test CA", ca_key, ca_name, ca_key, ca=True)
    cert = signed("receiver", key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.crt").write_bytes(ca.public_bytes(pem))
    (tmp_path / "r.crt").write_bytes(cert.public_bytes(pem))
    (tmp_path / "r.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "r.crt", tmp_path / "r.key")
    return context, tmp_path / "ca.crt"


@pytest.mark.parametrize("stall", [None, "headers"])
def test_a_wecom_robot_over_verified_https_is_bounded_by_the_deadline_too(
    store: Store, tmp_path: Path, stall: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system's CAs (here one the test trusts through SSL_CERT_FILE, which OpenSSL reads
    as it loads them) still verify the receiver: a whole answer is a delivery, one trickled
    over TLS is cut at the deadline."""
    server_tls, ca = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    at = None if stall is None else HTTP_STALLS[stall]
    with receiver(http_stalling(at), tls=server_tls) as robot:
        s = settings(tmp_path, wecom=f"https://127.0.0.1:{robot.port}")
        _compose(store, s)
        ((_, attempt),) = _deliver(store, channels.configured(s, limits=SLOW), NOW)
        assert len(robot.requests) == 1
    if stall is None:
        assert attempt.delivered
    else:
        assert (attempt.delivered, attempt.retry, attempt.problem) == (False, True, TOO_SLOW)


def test_a_receiver_that_never_completes_the_tls_handshake_is_cut_at_the_deadline(
    store: Store, tmp_path: Path
) -> None:
    with receiver(silent) as hook:
        s = settings(tmp_path, webhook=f"https://127.0.0.1:{hook.port}")
        _compose(store, s)
        ((_, attempt),) = _deliver(store, channels.configured(s, limits=SLOW), NOW)
        assert hook.arrived.is_set()
    assert (attempt.delivered, attempt.retry, attempt.problem) == (False, True, TOO_SLOW)


@pytest.mark.parametrize(("stage", "security"), [
    ("greeting", "none"), ("message", "none"), ("handshake", "tls"),
])  # fmt: skip
def test_a_mail_server_answering_byte_by_byte_is_cut_at_the_deadline(
    store: Store, tmp_path: Path, stage: str, security: str
) -> None:
    talk = silent if stage == "handshake" else smtp_stalling(stage)
    with receiver(talk) as smtp:
        s = settings(tmp_path, smtp_port=smtp.port, smtp_security=security)
        _compose(store, s)
        ((name, attempt),) = _deliver(store, channels.configured(s, limits=SLOW), NOW)
        messages = list(smtp.requests)
    assert (name, attempt.delivered, attempt.retry, attempt.problem) == (
        "email", False, True, TOO_SLOW
    )
    # Cut in its answer to the message, the server had it whole: a retry may repeat it, as
    # after any answer lost (at least once).
    assert len(messages) == (1 if stage == "message" else 0)


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_a_mail_server_answering_byte_by_byte_in_time_takes_the_message(
    store: Store, tmp_path: Path, security: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same server, each answer trickled but none held: within the deadline, sent, over
    TLS too (STARTTLS, implicit), the server's certificate verified."""
    server_tls, ca = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    talk = smtp_stalling("never", server_tls if security == "starttls" else None)
    with receiver(talk, tls=server_tls if security == "tls" else None) as smtp:
        s = settings(tmp_path, smtp_port=smtp.port, smtp_security=security)
        _compose(store, s)
        ((_, attempt),) = _deliver(store, channels.configured(s, limits=PATIENT), NOW)
        (message,) = smtp.requests
    assert attempt.delivered and b"devposture" in message


def test_a_mail_server_slow_after_starttls_is_cut_at_the_deadline(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_tls, ca = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with receiver(smtp_stalling("message", server_tls)) as smtp:
        s = settings(tmp_path, smtp_port=smtp.port, smtp_security="starttls")
        _compose(store, s)
        ((_, attempt),) = _deliver(store, channels.configured(s, limits=SLOW), NOW)
    assert (attempt.delivered, attempt.retry, attempt.problem) == (False, True, TOO_SLOW)


def test_one_slow_channel_does_not_hold_another(store: Store, tmp_path: Path) -> None:
    # The channels were sent to one after the other: a stalled WeCom robot held the webhook
    # (and email) for as long as it stalled.
    with receiver(http_stalling(HTTP_STALLS["status line"])) as robot, receiver(
        http_stalling(HTTP_STALLS["status line"])
    ) as hook:
        s = settings(tmp_path, wecom=robot.url, webhook=hook.url)
        _compose(store, s)
        done: list[list[tuple[str, channels.Attempt]]] = []
        found = channels.configured(s, limits=PATIENT)

        def send() -> None:
            done.append(asyncio.run(deliver_due(store, found, NOW, backoff=BACKOFF,
                                                io=on_own_thread)))  # fmt: skip

        sending = threading.Thread(target=send, daemon=True)
        sending.start()
        try:
            # Both hold their answers until released: both have the digest only if neither
            # waited for the other.
            wait_until(lambda: robot.arrived.is_set() and hook.arrived.is_set(),
                       "both receivers have the digest while both hold their answers",
                       GUARD_SECONDS)  # fmt: skip
        finally:
            robot.release.set()
            hook.release.set()
            sending.join(GUARD_SECONDS)
    (attempts,) = done
    assert sorted((name, a.delivered) for name, a in attempts) == [
        ("webhook", True), ("wecom", True)
    ]


def test_a_channel_whose_attempt_failed_sends_its_other_messages_at_the_next_round(
    store: Store, tmp_path: Path
) -> None:
    """Two messages due on one channel (the second composed after the first failed): the
    first answered 500, the second waits for the next round instead of costing as much."""
    with http_receiver([(500, {}), (500, {})]) as hook:
        s = settings(tmp_path, webhook=hook.url)
        _compose(store, s)
        found = channels.configured(s)
        ((_, first),) = _deliver(store, found, NOW)
        assert first.problem == "HTTP 500"
        later = NOW + dt.timedelta(minutes=15)
        _failing(store, 2, "desk-li", later)
        assert compose(store, POLICY, s, later) is not None
        assert [state for _, state, _, _ in store.alerts.deliveries()] == ["pending"] * 2
        attempts = _deliver(store, found, later)  # both due: the first answered 500 again
        assert [(a.delivered, a.problem) for _, a in attempts] == [(False, "HTTP 500")]
        assert len(hook.received) == 2
        (_, second) = _deliver(store, found, later + dt.timedelta(seconds=30))[0]
        assert second.delivered and len(hook.received) == 3
    assert [(state, n) for _, state, n, _ in store.alerts.deliveries()] == [
        ("pending", 2), ("sent", 1)
    ]


def _stopping(
    tmp_path: Path, *, drain_over: bool, caplog: pytest.LogCaptureFixture
) -> list[tuple[str, str, int, str]]:
    """A collector's alert task sending to a webhook that holds its answer, told to stop
    meanwhile. With its drain over (`drain_over`), the task must end while the receiver
    still holds; else the receiver is released and the task ends after the attempt. What the
    outbox then held."""
    with running_collector(tmp_path / "c") as collector, receiver(
        http_stalling(HTTP_STALLS["status line"])
    ) as hook:
        alerts = dataclasses.replace(
            collector.config.alerts, webhook_url=f"{hook.url}/hooks/devposture",
            certificate_warning_days=100000,  # the collector's own certificates: a digest
        )  # fmt: skip
        config = dataclasses.replace(collector.config, alerts=alerts)
        running, loop = collector._running, collector._loop
        stop = asyncio.Event()
        task = asyncio.run_coroutine_threadsafe(
            keep_alerting(running, config, stop, every=3600.0, limits=PATIENT), loop
        )
        try:
            wait_until(hook.arrived.is_set, "the digest sent, its answer held", GUARD_SECONDS)
            loop.call_soon_threadsafe(stop.set)
            if drain_over:  # the collector's drain is 0 s: over as soon as it begins
                asyncio.run_coroutine_threadsafe(running.drain(), loop).result(GUARD_SECONDS)
                with caplog.at_level(logging.WARNING):
                    task.result(GUARD_SECONDS)  # the receiver still holds its answer
            hook.release.set()
            task.result(GUARD_SECONDS)
        finally:
            hook.release.set()
            loop.call_soon_threadsafe(stop.set)
        reader = collector.store()
        try:
            return reader.alerts.deliveries()
        finally:
            reader.close()


def test_a_stopping_collector_lets_the_attempt_under_way_end_within_its_drain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deliveries = _stopping(tmp_path, drain_over=False, caplog=caplog)
    assert deliveries == [("webhook", "sent", 1, "sent")]


def test_a_stopping_collector_does_not_wait_past_its_drain_for_an_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The stop waited for the round under way: minutes, with a receiver answering byte by
    # byte, before the drain even began.
    deliveries = _stopping(tmp_path, drain_over=True, caplog=caplog)
    # Claimed, never recorded: sent again once the claim lapses (15 min).
    assert deliveries == [("webhook", "pending", 1, "")]
    assert "a message being sent is sent again in 15 min, once its claim lapses" in caplog.text


def test_an_attempt_left_on_its_own_thread_does_not_hold_the_event_loop_s_end() -> None:
    """asyncio.run waits for the threads of asyncio.to_thread's pool; not for this one."""
    release = threading.Event()
    ended = threading.Event()

    async def leave() -> None:
        attempt = asyncio.ensure_future(on_own_thread(release.wait))
        await asyncio.sleep(0)  # the thread started
        attempt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await attempt

    def run() -> None:
        asyncio.run(leave())
        ended.set()

    threading.Thread(target=run, daemon=True).start()
    try:
        assert ended.wait(GUARD_SECONDS), "asyncio.run waited for the attempt"
    finally:
        release.set()
