"""Create a collector data folder: CA, server certificate, configuration, empty database.

Private keys are written 0600 in a 0700 folder and never overwritten: running `init` twice on
the same folder refuses rather than silently replacing the CA that every agent has pinned.

A data folder is served by one collector at a time (`lock_data_folder`): two would share one
SQLite writer's assumptions (the evidence chain's head, the group commit) and hand agents two
different answers. Commands on the folder (`report`, `token`, ...) do not take the lock: they
are meant to run beside the collector.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from devposture.collector.agent_config import network_hash_key
from devposture.collector.config import (
    CONFIG_NAME,
    DEFAULT_ENROLL_PORT,
    DEFAULT_REPORT_PORT,
    CollectorConfig,
    load,
    render_default,
)
from devposture.collector.evidence import signing
from devposture.collector.pki import Authority, cert_pem, new_private_key, private_key_pem
from devposture.collector.store import Store
from devposture.collector.store.target import PostgresTarget
from devposture.policy import default_policy_text
from devposture.policy.cli_messages import Worded, said


class InitError(Worded):
    """The folder cannot be made into a collector data folder; the message says why (worded
    in the reader's language, `Worded`)."""


def not_empty(data_dir: Path) -> InitError:
    """A new data folder must be empty (`init`, `init --join`)."""
    return InitError("{path} exists and is not empty: give an empty or new folder", path=data_dir)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only, refusing to replace an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _split_names(names: list[str]) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return dns, ips


# A DNS name a certificate may carry: dot-separated labels of letters, digits and hyphens
# (RFC 1123; underscores too, which Windows domains' host names hold), a leading "*." for a
# wildcard, the last label not all digits ("999.1.1.1" is a mistyped address, not a name).
_DNS_NAME = re.compile(
    r"(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"(?=[A-Za-z0-9_-]*[A-Za-z_-])[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?"
)


def check_request(
    data_dir: Path, host: str, names: list[str], enroll_port: int, report_port: int
) -> None:
    """What `init` (and `init --join`) is asked for, checked before anything is made: what
    would only fail at `serve` (the same port twice, a name no certificate may carry) or in
    the middle of making the folder (a file where the folder should be) is refused now."""
    if data_dir.exists() and not data_dir.is_dir():
        raise InitError("{path} is a file, not a folder: give a new or empty folder", path=data_dir)
    if enroll_port == report_port != 0:  # 0: a free port each, picked at `serve`
        raise InitError(
            "the enrollment and report ports must differ: {port} was given for both",
            port=enroll_port,
        )
    if host not in ("", "0.0.0.0", "::") and not _is_address_or_name(host):  # noqa: S104
        raise InitError(
            "--listen {host} is neither an IP address nor a host name: give the address to"
            " listen on (0.0.0.0 for every IPv4 address)",
            host=repr(host),
        )
    check_names(names)


def check_names(names: list[str]) -> None:
    """Each `--san` an IP address or a DNS name a certificate may carry, or InitError."""
    for name in names:
        if not _is_address_or_name(name):
            raise InitError(
                "--san {name} is neither an IP address nor a DNS name (letters, digits and"
                " hyphens, separated by dots): correct it",
                name=repr(name),
            )


def _is_address_or_name(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return len(text) <= 253 and _DNS_NAME.fullmatch(text) is not None
    return True


def refuse_used(database: PostgresTarget) -> None:
    """Refuse a PostgreSQL database that already holds collector data: another installation's
    (its CA and evidence key are in its own data folders), which a new CA beside it would
    split in two."""
    from devposture.collector.store.engine import PostgresDatabase  # noqa: PLC0415
    from devposture.collector.store.migrate import used_table  # noqa: PLC0415

    connection = PostgresDatabase(database, max_connections=1)
    try:
        table = used_table(connection)
    finally:
        connection.close()
    if table is not None:
        raise InitError(
            "the PostgreSQL database {database} already holds collector data (table {table} is"
            " not empty): it belongs to another installation. For a further collector of that"
            " installation, use `init --join FOLDER` with a copy of its first collector's data"
            " folder; for a new installation, give an empty database",
            database=database.describe(), table=table,
        )


class OtherInstallation(Worded):
    """The database belongs to another installation than the data folder; the message names
    both and what to do."""


def evidence_key_of(data_dir: Path) -> str:
    """The fingerprint of the data folder's evidence-signing key: what names its installation."""
    return signing.fingerprint(signing.load_or_create(data_dir).public_key())


def claim_installation(config: CollectorConfig, store: Store) -> None:
    """Hold the database to the data folder's installation: the database is claimed for it if
    no installation has claimed it yet (a new database, or one made before schema 23), and
    OtherInstallation is raised if another one has."""
    ours = evidence_key_of(config.data_dir)
    held = store.installation.claim(ours, int(time.time() * 1_000_000))
    if held != ours:
        raise OtherInstallation(
            "the database {database} belongs to another installation (its evidence-signing key"
            " is {held}; this data folder's is {ours}): this folder was made by `init` for"
            " another database, or the database was given to another `init`. Point [database]"
            " url in {config} at this installation's own database; for a further collector of"
            " the installation that owns it, make a folder with `init --join` and a copy of that"
            " installation's first data folder",
            database=config.database.describe(), held=held, ours=ours,
            config=config.data_dir / CONFIG_NAME,
        )


@contextlib.contextmanager
def undone_on_failure(data_dir: Path) -> Iterator[None]:
    """Remove what a failed `init` made in `data_dir` (checked empty or missing before), so
    that the next `init` starts afresh instead of finding a half-made data folder."""
    existed = data_dir.exists()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif data_dir.is_dir():
            for item in data_dir.iterdir():
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)
        raise


def server_names(host: str, names: list[str]) -> tuple[list[str], list[str]]:
    """The server certificate's DNS names and IP addresses: `names` and the listen `host`."""
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
        names = [*names, host]
    return _split_names(names)


def initialize(
    data_dir: Path,
    host: str = "127.0.0.1",
    extra_names: list[str] | None = None,
    enroll_port: int = DEFAULT_ENROLL_PORT,
    report_port: int = DEFAULT_REPORT_PORT,
    *,
    database: PostgresTarget | None = None,
) -> tuple[CollectorConfig, x509.Certificate]:
    """Make the data folder; return its configuration and the CA certificate. The database
    is a SQLite file in the folder, or `database` (its tables are made if it has none; one
    holding collector data is refused). Nothing is left of a run that fails."""
    check_request(data_dir, host, list(extra_names or []), enroll_port, report_port)
    if (data_dir / CONFIG_NAME).exists():
        raise InitError(
            "{path} is already a collector data folder; refusing to replace its CA (agents"
            " have pinned it). Use another folder, or delete this one on purpose.",
            path=data_dir,
        )
    if data_dir.exists() and any(data_dir.iterdir()):
        raise not_empty(data_dir)
    if database is not None:
        refuse_used(database)
    with undone_on_failure(data_dir):
        return _make(data_dir, host, list(extra_names or []), enroll_port=enroll_port,
                     report_port=report_port, database=database)  # fmt: skip


def _make(
    data_dir: Path, host: str, extra_names: list[str], *, enroll_port: int, report_port: int,
    database: PostgresTarget | None,
) -> tuple[CollectorConfig, x509.Certificate]:  # fmt: skip
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for sub in ("ca", "tls"):
        (data_dir / sub).mkdir(mode=0o700)

    authority = Authority.create()
    names = ["localhost", socket.gethostname(), socket.getfqdn(), "127.0.0.1", "::1"]
    dns, ips = server_names(host, names + extra_names)
    server_key = new_private_key()
    server_cert = authority.issue_server_certificate(server_key, dns, ips)

    (data_dir / CONFIG_NAME).write_text(
        render_default(host, enroll_port, report_port, database=database), encoding="utf-8"
    )
    config = load(data_dir, new_database=True)
    write_private(config.ca_key, private_key_pem(authority.key))
    config.ca_cert.write_bytes(cert_pem(authority.cert))
    write_private(config.server_key, private_key_pem(server_key))
    config.server_cert.write_bytes(cert_pem(server_cert))
    config.policy.write_text(default_policy_text(), encoding="utf-8")
    # Made now, not on first use, so that a further collector (`init --join`) copies them.
    network_hash_key(data_dir)
    signing.load_or_create(data_dir)
    store = Store.open(config.database)
    try:
        claim_installation(config, store)  # a second `init` on this database is refused
    finally:
        store.close()
    return config, authority.cert


# In the data folder; holds the serving collector's process id while it is locked.
LOCK_NAME = "collector.lock"
# In the data folder: a remote `audit export`'s bundle while it is written and streamed
# (admin/service.py). Only the collector serving administration makes them, and removes each
# once streamed; one left behind by a collector that was killed holds report bodies, so it is
# removed when administration starts again, and never backed up.
EXPORT_FOLDER_PREFIX = "export-"


class DataFolderInUse(Worded):
    """Another collector serves this data folder; the message names it and what to do."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        holder = said("pid {pid}", pid=pid) if pid is not None else said(
            "its process id is not recorded")  # fmt: skip
        super().__init__(said(
            "the data folder {folder} is in use by another devposture-collector ({holder}):"
            " stop it first, or serve another data folder",
            folder=folder, holder=holder,
        ))  # fmt: skip
        self.folder = folder
        self.pid = pid


@dataclass
class DataFolderLock:
    """The serving collector's hold on its data folder: an OS lock (flock) on a file in it.
    The kernel releases it when the process ends, however it ends, so a collector killed
    with SIGKILL never leaves a stale lock behind."""

    path: Path
    _fd: int | None

    def release(self) -> None:
        """Give the folder up (at shutdown). The file stays: removing it would let a second
        collector lock a new file while a third still waits on the old one."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no process id left behind for the next reader to trust
        os.close(fd)  # closing the only descriptor releases the lock


def lock_data_folder(folder: Path) -> DataFolderLock:
    """Lock `folder` for this process, or raise DataFolderInUse naming the process that
    holds it. The lock file's descriptor is not inherited by child processes (hooks), which
    would otherwise keep the folder locked after the collector died."""
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _recorded_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DataFolderInUse(folder, holder) from None
        raise
    with contextlib.suppress(OSError):  # a full disk: the lock holds, the pid is not shown
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return DataFolderLock(path, fd)


def _recorded_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
