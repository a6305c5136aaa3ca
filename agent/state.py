"""The agent's state folder: its key, certificates and what it knows about its collector.

The folder is 0700 and the private key 0600: the key is the device's identity, and anyone who
can read it can speak for this computer. Files are replaced atomically (write, fsync, rename,
fsync the folder), so a crash leaves either the old state or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from devposture.agent.cert_dates import CertificateUnreadable, pem_der
from devposture.net.proxy import HttpsProxy
from devposture.policy.cli_messages import Said, Worded
from devposture.v1 import devposture_pb2 as pb

AGENT_FILE = "agent.json"
KEY_FILE = "device.key"
CERT_FILE = "device.crt"
CA_FILE = "ca.crt"
# Every name the agent writes in its state folder (and `.NAME.<16 hex>.tmp` while writing one,
# `temporary_of`), so that uninstalling with purge deletes these and nothing else from a folder
# IT chose (agent.install_setup.cleanup). A new file in the state folder is added here.
STATE_ENTRIES = frozenset({
    "agent.json", "device.key", "device.crt", "ca.crt", "command-cache.json",
    "wifi-sessions.json", "outbox", "network-hash.key", "agent-config.pb", "last-verdicts.pb",
    "renewal.json", "notified.json", "refused.json",
})  # fmt: skip


# The PEM labels of what the agent writes: its key (PKCS#8, or the EC form an older agent or
# a tool may have left), its certificate and the CA's.
_KEY_LABELS, _CERT_LABELS = (b"PRIVATE KEY", b"EC PRIVATE KEY"), (b"CERTIFICATE",)


def _holds_pem(data: bytes, labels: tuple[bytes, ...]) -> bool:
    """Whether `data` holds a PEM block labelled one of `labels` whose body is base64 of
    something (`cert_dates.pem_der`, which renewal reads the certificate's dates with)."""
    try:
        return bool(pem_der(data, labels))
    except CertificateUnreadable:
        return False


class StateError(Worded):
    """The state folder is missing, unreadable or incomplete; the message says what to do
    (worded in the reader's language, `Worded`)."""


STATE_ENV = "DEVPOSTURE_AGENT_STATE"


def platform_state_dir(platform: str = sys.platform) -> Path:
    """Where the state folder is when nothing says otherwise (agent.toml, the environment or
    --state, in `devposture.agent.settings`). On macOS and Windows it is a folder of its own
    beside agent.toml and the enrollment file (`settings.config_folder`), so that IT's files
    are not inside the device's private folder."""
    if platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "devposture" / "state"
    if platform == "darwin":
        return Path("/Library/Application Support/devposture/state")
    return Path("/var/lib/devposture-agent")


def platform_public_dir(platform: str = sys.platform) -> Path:
    """Where the service publishes what `status` shows, for every user of this computer
    (agent.public_status), when nothing says otherwise: a folder any local user can read,
    beside the private state. Linux: systemd's runtime folder for the unit (RuntimeDirectory=,
    0755; rewritten at every start, so a reboot's empty /run is filled again). macOS: made by
    the package, 0755. Windows: `devposture-agent setup` lets the Users group read it."""
    if platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "devposture" / "status"
    if platform == "darwin":
        return Path("/Library/Application Support/devposture/status")
    return Path("/run/devposture-agent")


def fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A temporary older than this is a crash's leftover; a younger one may be another process's
# write in progress (`devposture-agent once` while the service runs).
TEMP_GRACE_SECONDS = 60.0
_TEMPORARY = re.compile(r"^\.(.+?)(?:\.[0-9a-f]{16})?\.tmp$")


def temporary_of(name: str) -> str | None:
    """The file a temporary of `write_atomic` named `name` was to become (`.NAME.<16 hex>.tmp`,
    or `.NAME.tmp` from an earlier agent), or None when `name` is no such temporary."""
    found = _TEMPORARY.match(name)
    return found[1] if found else None


def is_stale_temporary(item: os.DirEntry[str]) -> bool:
    """Whether `item` is a temporary of `write_atomic` left by a crash: one whose time is more
    than the grace away from now, either way (written while the clock was days ahead, then set
    back, it was in the future and never looked old)."""
    if not (item.name.startswith(".") and item.name.endswith(".tmp")):
        return False
    try:
        age = time.time() - item.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return False
    return abs(age) > TEMP_GRACE_SECONDS


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporaries crashes left in the state folder `directory` (see
    `is_stale_temporary`): only of the agent's own files, as IT may have chosen a folder
    that holds others."""
    try:
        listing = os.scandir(directory)
    except OSError:
        return
    with listing:
        for item in listing:
            if temporary_of(item.name) in STATE_ENTRIES and is_stale_temporary(item):
                with contextlib.suppress(OSError):
                    Path(item.path).unlink()


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash at any point leaves one whole version.

    The temporary is this write's own: two processes writing the same file (the service and
    `once` saving the configuration a collector handed out) shared `.NAME.tmp`, and the
    second truncated and renamed the first's bytes, whose own rename then failed. Now the last
    rename wins, whole. A crash leaves the temporary, removed once stale
    (`remove_stale_temporaries`: the outbox's scans, the state's `load`)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(mode)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def ensure_private_dir(path: Path) -> None:
    """Create `path` (0700), or tighten an existing one to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform != "win32":
        path.chmod(0o700)


def refusal_data(reason: Said, at_us: int) -> dict[str, object]:
    """A refusal as JSON-ready data: refused.json's, and the public copy's (agent.public_status)."""
    return {"reason": str(reason), "worded": reason.data(), "at_us": at_us}


def refusal_of(kept: object) -> tuple[Said, int] | None:
    """Read back `refusal_data`: the sentence worded when it was kept so (else its English
    text as it is) and when, in microseconds; None for anything else (damaged)."""
    if not isinstance(kept, dict):
        return None
    try:
        reason = Said.of_data(kept.get("worded")) or Said(str(kept["reason"]), as_is=True)
        return reason, int(kept["at_us"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Enrollment:
    """What enrollment established, kept in agent.json."""

    device_id: str
    collector_host: str
    enroll_port: int
    report_port: int
    ca_fingerprint: str


@dataclass(frozen=True)
class AgentState:
    """The state folder, and how this agent reaches its collector: every call to it (enroll,
    report, renew) starts from here, so the network path travels with the folder."""

    directory: Path
    # The HTTPS proxy every connection to the collector goes through (None: direct).
    proxy: HttpsProxy | None = None
    # Where the service publishes what `status` shows, for the users of this computer who
    # cannot read this folder (agent.public_status); None: nowhere (a tool's or a test's).
    public_dir: Path | None = None

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_FILE

    @property
    def command_cache_path(self) -> Path:
        return self.directory / "command-cache.json"

    @property
    def wifi_sessions_path(self) -> Path:
        return self.directory / "wifi-sessions.json"

    @property
    def outbox_dir(self) -> Path:
        return self.directory / "outbox"

    def network_hash_key(self) -> bytes:
        """This device's key for hashing the names of private Wi-Fi networks (0600).

        Made once, at random: with no key, a "hashed" home network name could be recovered
        by hashing a list of common names. The policy may hand out a fleet-wide key later."""
        path = self.directory / "network-hash.key"
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = b""
        if len(key) < 32:
            key = secrets.token_bytes(32)
            try:
                ensure_private_dir(self.directory)
                write_atomic(path, key, 0o600)
            except OSError as exc:  # a first start on a full disk said "unexpected OSError"
                raise StateError(
                    "the state folder {path} cannot keep this computer's key for hashing"
                    " Wi-Fi names ({problem}): free space on its disk, or let the agent's"
                    " account write there, then try again",
                    path=self.directory,
                    problem=exc,
                ) from exc
        return key

    @property
    def config_path(self) -> Path:
        return self.directory / "agent-config.pb"

    @property
    def verdicts_path(self) -> Path:
        return self.directory / "last-verdicts.pb"

    @property
    def notified_path(self) -> Path:
        """Which failures the employee was told of (agent.notify.memory)."""
        return self.directory / "notified.json"

    def load_config(self) -> pb.AgentConfig | None:
        """The configuration the collector last handed out, or None before the first one."""
        try:
            return pb.AgentConfig.FromString(self.config_path.read_bytes())
        except FileNotFoundError:
            return None
        except DecodeError:
            return None  # damaged: the next acknowledgement brings a fresh one

    def company_time_zone(self) -> str:
        """The company's time zone the collector handed out (the policy's `time_zone`, an
        IANA name), in which the employee reads every time; "" before the first
        configuration, from an older collector, or when this user cannot read it."""
        try:
            config = self.load_config()
        except OSError:
            return ""
        return config.time_zone if config is not None else ""

    def config_version(self) -> int:
        config = self.load_config()
        return config.version if config is not None else 0

    def save_config(self, config: pb.AgentConfig) -> None:
        # 0600: it holds the fleet's key for hashing private Wi-Fi names.
        write_atomic(self.config_path, config.SerializeToString(deterministic=True), 0o600)

    def save_verdicts(self, ack: pb.ReportAck) -> None:
        # With their digest: the next report tells the collector which verdicts are held.
        kept = pb.ReportAck(report_id=ack.report_id, stored_at=ack.stored_at,
                            verdicts=ack.verdicts, verdicts_digest=ack.verdicts_digest)  # fmt: skip
        write_atomic(self.verdicts_path, kept.SerializeToString(deterministic=True), 0o600)

    @property
    def refusal_path(self) -> Path:
        return self.directory / "refused.json"

    def save_refusal(self, reason: Said, at_us: int) -> None:
        """The collector refuses this device itself (revoked or retired by IT, a copied
        identity): its words and when, for `status`, until a report is acknowledged again.
        The sentence is kept worded, to be shown in the language of whoever reads it."""
        payload = json.dumps(refusal_data(reason, at_us), ensure_ascii=False)
        write_atomic(self.refusal_path, payload.encode("utf-8"), 0o600)

    def load_refusal(self) -> tuple[Said, int] | None:
        """The refusal kept, worded when it was sent so (else its English text as it is)."""
        try:
            return refusal_of(json.loads(self.refusal_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None  # none, or damaged: `status` shows the verdicts as they are

    def clear_refusal(self) -> None:
        self.refusal_path.unlink(missing_ok=True)

    def load_verdicts(self) -> pb.ReportAck | None:
        try:
            return pb.ReportAck.FromString(self.verdicts_path.read_bytes())
        except (FileNotFoundError, DecodeError):
            return None

    def is_enrolled(self) -> bool:
        return (self.directory / AGENT_FILE).is_file()

    def check_writable(self) -> None:
        """Before anything is spent (an enrollment token is used once, and the collector
        records the device it enrolls): the state folder can be made and written to, or
        StateError naming it and the fix. Else the token was used up for an identity no
        computer could keep."""
        probe = self.directory / ".write-check"
        try:
            ensure_private_dir(self.directory)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StateError(
                "the state folder {path} cannot be written ({problem}): run the command as"
                " root (an administrator on Windows), as the agent's service runs, or give"
                " --state a folder you can write; the token was not used",
                path=self.directory,
                problem=exc.strerror or exc,
            ) from exc

    def save(self, enrollment: Enrollment, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> None:
        """Persist a completed enrollment. agent.json is written last: it marks completeness."""
        ensure_private_dir(self.directory)
        write_atomic(self.key_path, key_pem, 0o600)
        write_atomic(self.cert_path, cert_pem)
        write_atomic(self.ca_path, ca_pem)
        payload = json.dumps(asdict(enrollment), indent=2).encode("utf-8")
        write_atomic(self.directory / AGENT_FILE, payload)

    def load(self) -> Enrollment:
        remove_stale_temporaries(self.directory)
        path = self.directory / AGENT_FILE
        if not path.is_file():
            raise StateError(
                "this computer is not enrolled (no {file} in the state folder): run"
                " `devposture-agent enroll` first",
                file=AGENT_FILE,
            )
        try:
            enrollment = Enrollment(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise StateError(
                "{file} in the state folder is damaged ({problem}): enroll again with --force",
                file=AGENT_FILE,
                problem=exc,
            ) from exc
        for needed in (self.key_path, self.cert_path, self.ca_path):
            if not needed.is_file():
                raise StateError(
                    "{file} is missing from the state folder: enroll again with --force",
                    file=needed.name,
                )
        # Read before gRPC is given them: an empty key made it abort the process (SIGABRT,
        # "Check failed: private_key != nullptr"), garbage failed every call as a network
        # problem ("Failed to create security handshaker") that would never clear.
        for path, labels in ((self.key_path, _KEY_LABELS), (self.cert_path, _CERT_LABELS),
                             (self.ca_path, _CERT_LABELS)):  # fmt: skip
            if not _holds_pem(path.read_bytes(), labels):
                kind = labels[0].decode("ascii").lower()
                raise StateError(
                    "{file} in the state folder is damaged ({problem}): enroll again with --force",
                    file=path.name,
                    problem=f"no PEM {kind} in it",
                )
        return enrollment
