"""`devposture-collector init --join FOLDER`: a further collector beside the first, on the same
PostgreSQL database, sharing what every collector of one installation must share.

The database holds everything the collectors share as data. Four things are files, because
they are keys, and they are deployed alongside, copied from the first collector's data folder
(any copy of it: a backup, or the folder over SSH): the CA (`ca/`: every generation's key and
certificate and authorities.json, so a device enrolled through one collector is accepted by
all), the evidence-signing key (one key signs every bundle, whichever collector exports it),
the key agents hash private network names with (the same hashes from every collector), and
the policy file. The new folder gets its own server certificate, signed by the shared CA for
this host's names, and its own collector.toml naming the same database.

After a CA rollover or a policy edit on one collector, copy `ca/` (or policy.toml) to the
others again (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

from cryptography import x509

from devposture.collector.agent_config import HASH_KEY_FILE, network_hash_key
from devposture.collector.config import CONFIG_NAME, CollectorConfig, load, render_default
from devposture.collector.datadir import (
    InitError,
    check_request,
    claim_installation,
    not_empty,
    server_names,
    undone_on_failure,
    write_private,
)
from devposture.collector.evidence import signing
from devposture.collector.pki import cert_pem, new_private_key, private_key_pem
from devposture.collector.store import Store
from devposture.collector.store.target import PostgresTarget
from devposture.collector.trust import Trust


def _copy_tree(source: Path, destination: Path) -> None:
    """Copy a folder of keys, keeping each file's mode (private keys stay 0600)."""
    destination.mkdir(mode=0o700)
    for item in sorted(source.iterdir()):
        if item.is_dir():
            _copy_tree(item, destination / item.name)
        elif item.is_file():
            shutil.copy2(item, destination / item.name)


def _inside(file: Path | None, folder: Path) -> Path | None:
    """`file`'s path within `folder` (None: elsewhere), however either was written
    (relative to the current folder or absolute, through a link or not)."""
    if file is None:
        return None
    for path, base in ((file.absolute(), folder.absolute()), (file.resolve(), folder.resolve())):
        with contextlib.suppress(ValueError):
            return Path(os.path.normpath(path)).relative_to(os.path.normpath(base))
    return None


def join(
    data_dir: Path, source: Path, host: str = "127.0.0.1", extra_names: list[str] | None = None,
    *, enroll_port: int, report_port: int,
) -> tuple[CollectorConfig, x509.Certificate]:  # fmt: skip
    """Make `data_dir` a further collector of the installation whose first data folder is
    `source`; return its configuration and the (shared) signing CA's certificate."""
    check_request(data_dir, host, list(extra_names or []), enroll_port, report_port)
    first = load(source)
    if not isinstance(first.database, PostgresTarget):
        raise InitError(
            "{path} keeps its database in a SQLite file, which only one collector can use:"
            " move it to PostgreSQL first (`devposture-collector migrate --data {path} --to"
            " postgresql://…`), then join",
            path=source,
        )
    if (data_dir / CONFIG_NAME).exists() or (data_dir.exists() and any(data_dir.iterdir())):
        raise not_empty(data_dir)
    # The shared keys exist in the first folder before they are copied (an older folder
    # made them on first use).
    network_hash_key(source)
    signing.load_or_create(source)
    with undone_on_failure(data_dir):
        return _make(data_dir, source, first, host, list(extra_names or []),
                     enroll_port=enroll_port, report_port=report_port)  # fmt: skip


def _make(
    data_dir: Path, source: Path, first: CollectorConfig, host: str, extra_names: list[str],
    *, enroll_port: int, report_port: int,
) -> tuple[CollectorConfig, x509.Certificate]:  # fmt: skip
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    _copy_tree(first.ca_cert.parent, data_dir / "ca")
    for name in (HASH_KEY_FILE, signing.KEY_NAME):
        write_private(data_dir / name, (source / name).read_bytes())
    (data_dir / "tls").mkdir(mode=0o700)
    database = first.database
    assert isinstance(database, PostgresTarget)
    inside = _inside(database.password_file, source)
    if database.password_file is not None and inside is not None:
        # A password file kept in the first folder comes along, named in collector.toml
        # relative to the new folder as it was to the first; one elsewhere stays where IT
        # put it (the same path on every collector host).
        copied = data_dir / inside
        copied.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(copied, database.password_file.read_bytes())
        database = PostgresTarget(database.url, inside)
    elif database.password_file is not None:
        database = PostgresTarget(database.url, database.password_file.absolute())
    (data_dir / CONFIG_NAME).write_text(
        render_default(host, enroll_port, report_port, database=database), encoding="utf-8"
    )
    config = load(data_dir, new_database=True)
    shutil.copy2(first.policy, config.policy)
    authority = Trust(config).signing_authority()
    names = ["localhost", socket.gethostname(), socket.getfqdn(), "127.0.0.1", "::1"]
    dns, ips = server_names(host, names + extra_names)
    key = new_private_key()
    write_private(config.server_key, private_key_pem(key))
    config.server_cert.write_bytes(cert_pem(authority.issue_server_certificate(key, dns, ips)))
    store = Store.open(config.database)  # the database answers, and has its tables
    try:
        claim_installation(config, store)  # and is the first folder's installation's
    finally:
        store.close()
    return config, authority.cert
