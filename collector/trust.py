"""What the collector trusts and signs with: its CA(s) and its server certificate.

One place answers "which CA signs device certificates now" and "which CAs does the collector
accept", so that a CA rollover (old and new trusted side by side) changes this module only.

Layout of the data folder (see docs/certificates.md):

- `ca/ca.key`, `ca/ca.crt`: CA generation 1, made by `init`.
- `ca/ca-2.key`, `ca/ca-2.crt`, ...: later generations, made by `ca rollover stage`.
- `ca/authorities.json`: which generation signs and which are trusted. Absent (a folder made
  by `init` and never rolled over): generation 1 signs and is the only one trusted.
- `tls/server.key`, `tls/server.crt`: the server certificate both ports present.

Every change is made by writing new files first and then replacing `authorities.json` (or the
server pair) atomically, so a crash at any moment leaves a folder the collector can serve from.
CA files are never rewritten once made: a generation number always means the same CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig
from devposture.collector.new_file import fsync_dir, write_atomic, write_temporary
from devposture.collector.pki import (
    Authority,
    cert_pem,
    fingerprint,
    load_private_key,
    new_private_key,
    private_key_pem,
)
from devposture.policy.cli_messages import Said, Worded, said

if TYPE_CHECKING:
    from devposture.collector.store import Store
    from devposture.collector.store.identity import CaHolding, HeldBack, NotRenewed

log = logging.getLogger(__name__)
R = TypeVar("R")

AUTHORITIES_FILE = "authorities.json"
RETIRED_DIR = "retired"
# How often, at most, the running server looks at the certificate files' modification times.
# gRPC asks on every new connection; a stat() per second is nothing, a PEM parse per
# connection would be.
RELOAD_CHECK_SECONDS = 1.0


class TrustError(Worded):
    """A certificate operation that cannot be done; the message names the problem and the fix,
    in the reader's language (`ca rollover` is refused with it, for the IT person who finishes
    a rollover weeks after someone else started it)."""


class Stage:
    """Where a CA rollover stands (derived from authorities.json, never stored)."""

    STEADY = "steady"  # one CA, signing and trusted
    STAGED = "staged"  # a new CA is trusted but not signing yet
    ACTIVATED = "activated"  # the new CA signs, the previous one is still trusted


@dataclass(frozen=True)
class Authorities:
    """The content of ca/authorities.json: signing generation, trusted generations, when."""

    signing: int
    trusted: tuple[int, ...]
    staged_at: dt.datetime | None = None
    activated_at: dt.datetime | None = None

    @property
    def stage(self) -> str:
        if any(g > self.signing for g in self.trusted):
            return Stage.STAGED
        if any(g < self.signing for g in self.trusted):
            return Stage.ACTIVATED
        return Stage.STEADY

    def to_json(self) -> bytes:
        payload: dict[str, object] = {"signing": self.signing, "trusted": list(self.trusted)}
        # To the microsecond, as the database records when each certificate was issued: the
        # rollover's steps compare the two (`Trust.not_renewed_since`).
        if self.staged_at is not None:
            payload["staged_at"] = self.staged_at.isoformat(timespec="microseconds")
        if self.activated_at is not None:
            payload["activated_at"] = self.activated_at.isoformat(timespec="microseconds")
        return (json.dumps(payload, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> Authorities:
        try:
            table = json.loads(data)
            signing = table["signing"]
            trusted = tuple(table["trusted"])
            staged = table.get("staged_at")
            activated = table.get("activated_at")
            if not isinstance(signing, int) or not all(isinstance(g, int) for g in trusted):
                raise TypeError("generations must be numbers")
            if signing not in trusted:
                raise ValueError("the signing generation is not among the trusted ones")
            return cls(
                signing,
                trusted,
                dt.datetime.fromisoformat(staged) if isinstance(staged, str) else None,
                dt.datetime.fromisoformat(activated) if isinstance(activated, str) else None,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise TrustError(
                "{path} is damaged ({problem}); restore it from a backup of the data folder",
                path=where, problem=exc,
            ) from exc  # fmt: skip


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create a file that must not exist yet: CA files are never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _same_public_key(key_pem: bytes, cert: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    ours = load_private_key(key_pem).public_key().public_bytes(der, spki)
    return ours == cert.public_key().public_bytes(der, spki)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class TlsMaterial:
    """One consistent server configuration: key, chain to present, client-cert roots."""

    key_pem: bytes
    chain_pem: bytes
    roots_pem: bytes
    server_serial: int

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key_pem, self.chain_pem)], root_certificates=self.roots_pem
        )


class _Reloader:
    """Serves the newest good server key/cert and CA bundle to gRPC, checked cheaply.

    gRPC calls the fetcher before every TLS handshake, on a gRPC core thread. So it looks at
    modification times at most once a second, parses only when something changed, and never
    raises: a half-replaced or mismatched pair is logged and the previous configuration kept,
    so a mistake during rotation cannot take the collector off the air.
    """

    def __init__(self, trust: Trust) -> None:
        self._trust = trust
        self._lock = threading.Lock()
        # Stamps before contents: a change made while loading is then seen at the next check.
        self._stamps = self._current_stamps()
        self._material = trust.load_tls_material()
        self._version = 0
        self._checked = time.monotonic()

    def _current_stamps(self) -> tuple[tuple[int, int, int] | None, ...]:
        paths = [self._trust.config.server_key, self._trust.config.server_cert]
        paths.append(self._trust.authorities_path)
        try:
            generations = self._trust.authorities().trusted
        except TrustError:
            generations = ()
        for generation in generations:
            paths.append(self._trust.cert_path(generation))
        return tuple(_stamp(p) for p in paths)

    @property
    def material(self) -> TlsMaterial:
        return self._material

    def refresh(self) -> tuple[int, TlsMaterial]:
        """The current (version, material), reloading from disk if a file changed."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < RELOAD_CHECK_SECONDS:
                return self._version, self._material
            self._checked = now
            stamps = self._current_stamps()
            if stamps == self._stamps:
                return self._version, self._material
            try:
                material = self._trust.load_tls_material()
            except Exception as exc:  # never break a handshake over a reload
                # Not remembering the stamps: the next check (a second later) tries again,
                # which also picks up the second file of a pair being replaced right now.
                log.warning(
                    "server certificate files changed but cannot be used yet (%s);"
                    " still serving the previous certificate",
                    exc,
                )
                return self._version, self._material
            self._stamps = stamps
            if material != self._material:
                self._material = material
                self._version += 1
                log.info(
                    "serving server certificate serial %x to new connections",
                    material.server_serial,
                )
            return self._version, self._material

    def fetcher(self) -> Callable[[], grpc.ServerCertificateConfiguration | None]:
        """A fetcher for one port: returns a configuration only when it changed for that port."""
        served = [0]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            try:
                version, material = self.refresh()
                if version == served[0]:
                    return None
                served[0] = version
                return material.configuration()
            except Exception:  # raising here would make gRPC refuse the connection
                log.exception("server certificate reload failed; keeping the previous one")
                return None

        return fetch


@dataclass
class Trust:
    """The collector's signing CA and the CA certificates it trusts."""

    config: CollectorConfig
    _reloader: _Reloader | None = field(default=None, init=False, repr=False, compare=False)

    # -- layout ---------------------------------------------------------------------------

    @property
    def ca_dir(self) -> Path:
        return self.config.ca_cert.parent

    @property
    def authorities_path(self) -> Path:
        return self.ca_dir / AUTHORITIES_FILE

    def key_path(self, generation: int) -> Path:
        return self.config.ca_key if generation == 1 else self.ca_dir / f"ca-{generation}.key"

    def cert_path(self, generation: int) -> Path:
        return self.config.ca_cert if generation == 1 else self.ca_dir / f"ca-{generation}.crt"

    def authorities(self) -> Authorities:
        """Which generation signs and which are trusted; a folder from `init` has generation 1."""
        try:
            data = self.authorities_path.read_bytes()
        except FileNotFoundError:
            return Authorities(signing=1, trusted=(1,))
        return Authorities.from_json(data, self.authorities_path)

    def _load_cert(self, generation: int) -> x509.Certificate:
        path = self.cert_path(generation)
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except FileNotFoundError as exc:
            raise TrustError(
                "CA certificate {path} is missing but {file} trusts it; restore the ca folder"
                " from a backup of the data folder",
                path=path, file=self.authorities_path.name,
            ) from exc  # fmt: skip

    def ca_cert(self, generation: int) -> x509.Certificate:
        """The CA certificate of `generation`, or TrustError naming the missing file."""
        return self._load_cert(generation)

    # -- the three questions the rest of the collector asks ---------------------------------

    def signing_authority(self) -> Authority:
        """The CA that signs device (and server) certificates now."""
        generation = self.authorities().signing
        return Authority.load(
            self.key_path(generation).read_bytes(), self.cert_path(generation).read_bytes()
        )

    def trusted_cas(self) -> list[x509.Certificate]:
        """Every CA whose device certificates the collector accepts, the signing one first."""
        authorities = self.authorities()
        order = [authorities.signing] + [g for g in authorities.trusted if g != authorities.signing]
        return [self._load_cert(g) for g in order]

    def trusted_ca_pem(self) -> bytes:
        """The trusted CAs as one PEM bundle, what agents keep as their trust anchors."""
        return b"".join(cert_pem(c) for c in self.trusted_cas())

    def every_ca(self) -> list[tuple[int, x509.Certificate]]:
        """(generation, certificate) of every CA the data folder holds, the signing one first,
        then the other trusted ones, then any other (a crashed stage's, `ca/retired/`): what a
        device certificate may have been signed by. A file that cannot be read is left out
        (it signs nothing here)."""
        authorities = self.authorities()
        order = [authorities.signing] + [g for g in authorities.trusted if g != authorities.signing]
        paths = [(g, self.cert_path(g)) for g in order]
        for folder in (self.ca_dir, self.ca_dir / RETIRED_DIR):
            for path in sorted(folder.glob("ca*.crt")):
                number = path.stem.removeprefix("ca").removeprefix("-") or "1"
                if number.isdigit():
                    paths.append((int(number), path))
        found: dict[str, tuple[int, x509.Certificate]] = {}
        for generation, path in paths:
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError):
                continue
            found.setdefault(fingerprint(cert), (generation, cert))
        return list(found.values())

    def issuer_of(self, cert: x509.Certificate) -> str | None:
        """The fingerprint of the CA of this data folder whose signature `cert` bears, or None
        when none verifies it: how a certificate recorded before schema 28, which the database
        kept only the serial of, gets its CA when its device presents it."""
        for _, ca in self.every_ca():
            if _issued_by(cert, ca):
                return fingerprint(ca)
        return None

    def labelled_cas(self) -> list[tuple[Said, int, x509.Certificate]]:
        """Each trusted CA with what it is for, for IT (`ca fingerprint --all`), worded in
        the reader's language when shown."""
        authorities = self.authorities()
        labelled = []
        for generation in sorted(authorities.trusted):
            if generation == authorities.signing:
                label = said("signing")
            elif generation > authorities.signing:
                label = said("staged (trusted, not signing yet)")
            else:
                label = said("previous (still trusted until `ca rollover finish`)")
            labelled.append((label, generation, self._load_cert(generation)))
        return labelled

    # -- the server certificate -----------------------------------------------------------

    def load_tls_material(self) -> TlsMaterial:
        """Read the server pair and CA bundle, checking they belong together.

        The chain presented is the server certificate and the CA that issued it, so an
        enrolling agent can pin that CA by fingerprint; client certificates are accepted from
        every trusted CA.
        """
        key_pem = self.config.server_key.read_bytes()
        cert_bytes = self.config.server_cert.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_bytes)
        if not _same_public_key(key_pem, cert):
            raise TrustError(
                "{key} does not match {cert}; run `devposture-collector tls rotate` to issue a"
                " matching pair",
                key=self.config.server_key, cert=self.config.server_cert,
            )  # fmt: skip
        cas = self.trusted_cas()
        issuers = [ca for ca in cas if _issued_by(cert, ca)]
        if issuers:
            chain = cert_pem(cert) + cert_pem(issuers[0])
        else:
            log.warning(
                "the server certificate was not issued by a trusted CA; agents will refuse it."
                " Run `devposture-collector tls rotate`"
            )
            chain = cert_pem(cert) + b"".join(cert_pem(c) for c in cas)
        roots = b"".join(cert_pem(c) for c in cas)
        return TlsMaterial(key_pem, chain, roots, cert.serial_number)

    def server_credentials(self, require_client_auth: bool) -> grpc.ServerCredentials:
        """Credentials that follow the files on disk: a rotated server certificate or a
        changed CA bundle is used for new connections within about a second, no restart.

        Raises when the files are unusable now: at startup there is nothing older to keep.
        """
        if self._reloader is None:
            self._reloader = _Reloader(self)
        # The stubs say the fetcher must return a configuration; gRPC documents None as
        # "no change", which is what keeps the common case free.
        fetcher = cast(
            "Callable[[], grpc.ServerCertificateConfiguration]", self._reloader.fetcher()
        )
        return grpc.dynamic_ssl_server_credentials(
            self._reloader.material.configuration(),
            fetcher,
            require_client_authentication=require_client_auth,
        )

    def server_names(self) -> tuple[list[str], list[str]]:
        """DNS names and IP addresses of the current server certificate."""
        cert = x509.load_pem_x509_certificate(self.config.server_cert.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return [], []
        dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
        return dns, ips

    def rotate_server_certificate(self, extra_names: list[str] | None = None) -> x509.Certificate:
        """Issue a new server key and certificate from the signing CA, with the current names
        plus `extra_names`, and put them in place atomically for the running server."""
        try:
            dns, ips = self.server_names()
        except (OSError, ValueError) as exc:
            # Rotation is also the repair for a damaged certificate: start from init's names.
            log.warning(
                "cannot read the current server certificate (%s); using the default names"
                " (this computer's names, localhost, the [listen] host) plus --san",
                exc,
            )
            dns, ips = _default_names(self.config)
        for given in extra_names or []:
            name = given.strip()
            if not name:
                continue
            try:
                ips.append(str(ipaddress.ip_address(name)))
            except ValueError:
                dns.append(name.lower())
        if not dns and not ips:
            raise TrustError(
                "the current server certificate lists no names; give them with --san NAME"
            )
        return self._install_server_pair(self.signing_authority(), dns, ips)

    def _install_server_pair(
        self, authority: Authority, dns: list[str], ips: list[str]
    ) -> x509.Certificate:
        key = new_private_key()
        cert = authority.issue_server_certificate(key, dns, ips)
        # Both files are complete before either is replaced; the running server checks that
        # key and certificate match, so the instant between the two renames is harmless.
        key_tmp = write_temporary(self.config.server_key, private_key_pem(key), 0o600)
        cert_tmp = write_temporary(self.config.server_cert, cert_pem(cert), 0o644)
        key_tmp.replace(self.config.server_key)
        cert_tmp.replace(self.config.server_cert)
        fsync_dir(self.config.server_cert.parent)
        return cert

    # -- CA rollover ----------------------------------------------------------------------

    def _write_authorities(self, authorities: Authorities) -> None:
        write_atomic(self.authorities_path, authorities.to_json(), 0o644)

    def _next_generation(self, authorities: Authorities) -> int:
        """A number never used in this folder (a crashed stage may have left unused files)."""
        used = set(authorities.trusted)
        for path in [*self.ca_dir.glob("ca-*.*"), *(self.ca_dir / RETIRED_DIR).glob("ca-*.*")]:
            number = path.name.removeprefix("ca-").split(".")[0]
            if number.isdigit():
                used.add(int(number))
        return max(used) + 1

    def stage_rollover(self, now: dt.datetime | None = None) -> tuple[int, x509.Certificate]:
        """Make a new CA and trust it beside the current one; the current one still signs."""
        authorities = self.authorities()
        if authorities.stage != Stage.STEADY:
            raise TrustError(
                "a CA rollover is already in progress (stage: {stage}); see"
                " `devposture-collector ca rollover status` for the next step",
                stage=authorities.stage,
            )
        generation = self._next_generation(authorities)
        authority = Authority.create(f"devposture collector CA {generation}")
        _write_new(self.key_path(generation), private_key_pem(authority.key), 0o600)
        _write_new(self.cert_path(generation), cert_pem(authority.cert), 0o644)
        fsync_dir(self.ca_dir)
        self._write_authorities(
            Authorities(
                signing=authorities.signing,
                trusted=(*authorities.trusted, generation),
                staged_at=now or utcnow(),
            )
        )
        return generation, authority.cert

    def activate_rollover(
        self, now: dt.datetime | None = None, force: bool = False
    ) -> tuple[int, x509.Certificate]:
        """Make the staged CA the signing one and re-issue the server certificate from it."""
        now = now or utcnow()
        authorities = self.authorities()
        if authorities.stage != Stage.STAGED:
            raise TrustError(self._not_in_stage(authorities, "activate", Stage.STAGED))
        if not force:
            waiting = self.not_renewed_since(authorities.staged_at, now)
            if waiting:
                raise TrustError(
                    "{count} active device(s) did not renew their certificate since the new CA"
                    " was staged on {staged}, so they do not have it yet (the last of their"
                    " certificates is valid until {until}). Activating now would cut them off:"
                    " they could not verify the collector's new server certificate, and each"
                    " would need a new enrollment token. Wait until they have renewed (agents"
                    " renew by themselves), at the latest until {until};"
                    " `devposture-collector ca rollover status --devices` lists them. --force"
                    " activates anyway, at that cost",
                    count=len(waiting), staged=_day(authorities.staged_at, self.config),
                    until=_day(waiting[0].valid_until, self.config),
                )  # fmt: skip
        new = max(authorities.trusted)
        staged = self._load_cert(new)
        if not force:
            self._refuse_for_collectors("activate", fingerprint(staged), now)
        updated = Authorities(
            signing=new,
            trusted=authorities.trusted,
            staged_at=authorities.staged_at,
            activated_at=now,
        )
        # Server certificate first: both CAs are trusted already, so the new pair is served
        # with its chain at once; a crash before the next line leaves "staged", and running
        # activate again completes it.
        dns, ips = self.server_names()
        authority = Authority.load(self.key_path(new).read_bytes(), cert_pem(staged))
        self._install_server_pair(authority, dns, ips)
        self._write_authorities(updated)
        return new, staged

    def finish_rollover(
        self, now: dt.datetime | None = None, force: bool = False
    ) -> list[tuple[int, x509.Certificate]]:
        """Stop trusting the previous CA(s); their files move to ca/retired/."""
        now = now or utcnow()
        authorities = self.authorities()
        if authorities.stage != Stage.ACTIVATED:
            raise TrustError(self._not_in_stage(authorities, "finish", Stage.ACTIVATED))
        signing = self._load_cert(authorities.signing)
        if not force:
            held = self.held_by_other_cas(now)
            if held:
                from devposture.collector.issuing_ca import finish_refusal  # noqa: PLC0415

                raise TrustError(finish_refusal(
                    held, authorities.activated_at, self.ca_generations(),
                    lambda moment: _day(moment, self.config),
                ))  # fmt: skip
            self._refuse_for_collectors("finish", fingerprint(signing), now)
        server = x509.load_pem_x509_certificate(self.config.server_cert.read_bytes())
        if not _issued_by(server, signing):
            raise TrustError(
                "the server certificate is not signed by the new CA, so agents that keep only"
                " the new CA could not verify the collector. Run `devposture-collector tls"
                " rotate` first, then finish again"
            )
        retired = [(g, self._load_cert(g)) for g in authorities.trusted if g != authorities.signing]
        self._write_authorities(
            Authorities(signing=authorities.signing, trusted=(authorities.signing,))
        )
        archive = self.ca_dir / RETIRED_DIR
        archive.mkdir(mode=0o700, exist_ok=True)
        for generation, _ in retired:
            for path in (self.key_path(generation), self.cert_path(generation)):
                if path.exists():
                    path.replace(archive / f"ca-{generation}{path.suffix}")
        fsync_dir(self.ca_dir)
        return retired

    def other_collectors(self, now: dt.datetime) -> tuple[list[CaHolding], dt.datetime]:
        """`ca_holdings.others_said`, read from the database."""
        from devposture.collector.ca_holdings import others_said  # noqa: PLC0415

        return self._reading(lambda store: [others_said(self.config, store, now)])[0]

    def _refuse_for_collectors(self, step: str, new: str, now: dt.datetime) -> None:
        """TrustError when a serving collector does not hold what `step` needs of the new CA
        (fingerprint `new`): trusting it for `activate`; signing with it and presenting a
        server certificate from it for `finish`."""
        from devposture.collector import ca_holdings  # noqa: PLC0415

        others, moment = self.other_collectors(now)
        serving = ca_holdings.serving(others, moment)
        generations = self.ca_generations()

        def day(at: dt.datetime) -> str | Said:
            return _day(at, self.config)

        if step == "activate":
            waiting = ca_holdings.lacking(serving, new)
            if waiting:
                raise TrustError(ca_holdings.activate_refusal(waiting, generations, day))
            return
        waiting = ca_holdings.not_switched(serving, new)
        if waiting:
            raise TrustError(ca_holdings.finish_refusal(waiting, generations, day))

    def ca_generations(self) -> dict[str, int]:
        """Each CA's generation by its fingerprint, for naming a certificate's CA to IT."""
        from devposture.collector.issuing_ca import ca_generations  # noqa: PLC0415

        return ca_generations(self.ca_dir)

    def held_by_other_cas(self, now: dt.datetime) -> list[HeldBack]:
        """The active devices that may still present a certificate that the signing CA did
        not sign (the previous CA's, also one issued after `activate` by a collector that
        still signs with it, or one whose CA is not recorded), from the CA the database
        recorded for each certificate, latest expiry first: what `finish` waits for. The
        database is the one every collector of the site writes, so a certificate any of them
        signed counts."""
        signing = fingerprint(self._load_cert(self.authorities().signing))
        return self._reading(lambda store: store.identity.held_by_other_cas(signing, now))

    def not_renewed_since(self, moment: dt.datetime | None, now: dt.datetime) -> list[NotRenewed]:
        """The active devices that may still be using a certificate issued before `moment`
        (a stage's or an activation's time), from the certificates the database recorded,
        latest expiry first.

        Not from `device_certificate_days`: IT may have shortened it since those certificates
        were signed, and they stay valid for the lifetime they were given. A moment that
        authorities.json does not record (a hand-edited file) is taken as now: every valid
        certificate may then predate it, and only --force goes on. The database is the one
        every collector of the site writes (on PostgreSQL), so renewals another collector
        answered count too."""
        # A moment in whole seconds was written by an older collector, which cut it: a
        # certificate issued in that second, but before the step, must not pass for one
        # issued after it.
        cutoff = moment or now
        if moment is not None and moment.microsecond == 0:
            cutoff += dt.timedelta(seconds=1)
        return self._reading(lambda store: store.identity.not_renewed_since(cutoff, now))

    def _reading(self, question: Callable[[Store], list[R]]) -> list[R]:
        """`question` asked of the database, or TrustError saying it cannot be read."""
        from devposture.collector.store import Store, database_errors  # noqa: PLC0415

        try:
            store = Store.open_reader(self.config.database)
            try:
                return question(store)
            finally:
                store.close()
        except database_errors() as exc:
            raise TrustError(
                "cannot read the devices' certificates from the database ({problem}): they"
                " tell which agents would be cut off. Check [database] in collector.toml and"
                " that the database answers, then run the command again",
                problem=exc,
            ) from exc

    def _not_in_stage(self, authorities: Authorities, action: str, needed: str) -> Said:
        steps = {
            Stage.STEADY: said("no rollover is in progress: start one with `ca rollover stage`"),
            Stage.STAGED: said(
                "the new CA is staged but not active: run `ca rollover activate` first"
            ),
            Stage.ACTIVATED: said(
                "the new CA is already active: the next step is `ca rollover finish`"
            ),
        }
        return said(
            "cannot {action} (it needs stage {needed}): {step}",
            action=action, needed=repr(needed), step=steps[authorities.stage],
        )  # fmt: skip


def _default_names(config: CollectorConfig) -> tuple[list[str], list[str]]:
    """The names `init` puts in a server certificate."""
    names = ["localhost", socket.gethostname(), socket.getfqdn(), "127.0.0.1", "::1"]
    if config.host not in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
        names.append(config.host)
    dns: list[str] = []
    ips: list[str] = []
    for name in dict.fromkeys(names):
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return dns, ips


def _day(moment: dt.datetime | None, config: CollectorConfig) -> str | Said:
    """A moment in the company's time zone (the policy in force), as every CLI time reads."""
    if moment is None:
        return said("an unknown date")
    from devposture.collector.company_time import shown  # noqa: PLC0415
    from devposture.collector.policy.in_force import zone_in_force  # noqa: PLC0415

    return shown(moment, zone_in_force(config))
