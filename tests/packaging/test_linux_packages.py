"""The .deb packages installed for real into clean Debian 12 and Debian 13 root filesystems.

In each root (debootstrap minbase + systemd, unpacked afresh): the collector's package is
installed, `init` makes its data folder as the service's user, and its unit's ExecStart= line
serves on loopback until it says READY=1. IT's enrollment file is put in
/etc/devposture/enroll.token before the agent's package is installed; the maintainer scripts
make the folders and enable the unit (policy-rc.d keeps anything from starting, as in an image
build). The installed agent prints its report (`collect --json`); started by its unit's
ExecStart= line it enrolls with the file, deletes it and sends a report the collector stores
and acknowledges. A newer build (release 2) upgrades it and the device keeps its identity;
`dpkg -r` keeps the state, `dpkg -P` deletes it. `systemd-analyze verify`, the release's own,
checks the installed units.

The installed collector also keeps its database in PostgreSQL: `init --database` against a
database made for the test on the test server (DEVPOSTURE_TEST_POSTGRESQL, else the one
scripts/postgresql-for-tests looks for first, 127.0.0.1:5432), read back from the host. The
root runs under chroot, which shares the host's network: its 127.0.0.1 is the host's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.packaging.conftest import SUITES, rootfs, unavailable
from tests.packaging.linux_root import (
    EVENT_TIMEOUT,
    DebianRoot,
    NotifySocket,
    Unit,
    debian_root,
    set_collector_ports,
)
from tests.ports import free_ports
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

AGENT = "/usr/bin/devposture-agent"
COLLECTOR = "/usr/bin/devposture-collector"
DATA = "/var/lib/devposture-collector"
STATE = "/var/lib/devposture-agent"
TOKEN_FILE = "/etc/devposture/enroll.token"
# The server the collector's PostgreSQL tests use (tests/databases.py); `make unit` runs these
# tests without DEVPOSTURE_TEST_POSTGRESQL, so the address scripts/postgresql-for-tests tries first.
POSTGRESQL = os.environ.get("DEVPOSTURE_TEST_POSTGRESQL") or (
    "postgresql://postgres@127.0.0.1:5432/postgres")  # fmt: skip


@pytest.fixture(params=SUITES)
def root(request: pytest.FixtureRequest) -> Iterator[DebianRoot]:
    tarball = rootfs(request.param)
    # Unpacked under a short path of its own: the services' notify sockets live inside the
    # root, and an AF_UNIX address holds at most 107 bytes (pytest's tmp_path, under a
    # parallel run's worker folder, is longer than that leaves room for).
    with (
        tempfile.TemporaryDirectory(prefix="dp-root-") as folder,
        debian_root(tarball, Path(folder) / request.param) as unpacked,
    ):
        yield unpacked


@pytest.fixture
def postgresql_database() -> Iterator[str]:
    """A new, empty database on the test server for one test, dropped after: its address."""
    # Named as tests/databases.py names a run's database, so that a run killed before dropping
    # it has it dropped by the next run of the collector's PostgreSQL tests.
    name = f"devposture_test_{os.getpid()}_package_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(POSTGRESQL, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL at {POSTGRESQL} ({exc}); scripts/postgresql-for-tests"
                    " starts one, DEVPOSTURE_TEST_POSTGRESQL names another")  # fmt: skip
    with admin:
        admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    try:
        yield urlunsplit(urlsplit(POSTGRESQL)._replace(path=f"/{name}", query=""))
    finally:
        with psycopg.connect(POSTGRESQL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dpkg(root: DebianRoot, *argv: str, package: Path | None = None) -> str:
    if package is not None:
        (root.file("/tmp") / package.name).write_bytes(package.read_bytes())
        argv = (*argv, f"/tmp/{package.name}")
    done = root.run("dpkg", *argv)
    return done.stdout + done.stderr


def serve_collector(root: DebianRoot, package: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Install the collector, `init` as its user, serve with the unit's ExecStart= line."""
    out = dpkg(root, "-i", package=package)
    assert "devposture-collector" in root.run("getent", "passwd", "devposture-collector").stdout
    data = root.file(DATA)
    assert data.is_dir() and data.stat().st_mode & 0o777 == 0o700
    assert "not started yet" not in out  # systemd does not run here: nothing tried to start
    enroll, report, admin, metrics, web = free_ports(5)
    root.run(COLLECTOR, "init", "--data", DATA, "--listen", "127.0.0.1", "--enroll-port",
             str(enroll), "--report-port", str(report), user="devposture-collector")  # fmt: skip
    set_collector_ports(root.file(f"{DATA}/collector.toml"), admin, metrics, web)
    unit = Unit.parse(root.file("/usr/lib/systemd/system/devposture-collector.service").read_text())
    assert unit.user == "devposture-collector"
    notify = NotifySocket(root.file("/run/devposture-test/collector.sock"))
    process = root.start(unit, "collector", notify)
    notify.wait_for("READY=1", process, EVENT_TIMEOUT)
    return process, enroll


def enrollment_value(root: DebianRoot, enroll_port: int) -> str:
    done = root.run(COLLECTOR, "token", "create", "--bundle", "--data", DATA,
                    "--enroll-address", f"127.0.0.1:{enroll_port}",
                    user="devposture-collector")  # fmt: skip
    value = done.stdout.strip().splitlines()[-1]
    assert value.startswith("dpe1."), done.stdout
    return value


def stored_devices(root: DebianRoot) -> list[dict[str, object]]:
    done = root.run(COLLECTOR, "device", "list", "--format", "json", "--data", DATA,
                    user="devposture-collector")  # fmt: skip
    devices: list[dict[str, object]] = json.loads(done.stdout)
    return devices


def device_id(root: DebianRoot) -> str:
    agent = json.loads(root.file(f"{STATE}/agent.json").read_text())
    return str(agent["device_id"])


def test_packages_install_enroll_report_upgrade_and_purge(
    root: DebianRoot, packages: dict[str, Path], upgrade_packages: dict[str, Path]
) -> None:
    collector, enroll_port = serve_collector(root, packages["collector.deb"])

    # IT's enrollment file is on the computer before the package (0600, root's).
    token = root.file(TOKEN_FILE)
    token.parent.mkdir(parents=True)
    token.write_text(enrollment_value(root, enroll_port) + "\n")
    token.chmod(0o600)
    dpkg(root, "-i", package=packages["agent.deb"])
    state = root.file(STATE)
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o700
    wants = root.file("/etc/systemd/system/multi-user.target.wants/devposture-agent.service")
    # The unit is enabled: the link points at the installed unit (Debian 12's helper names it
    # by /lib, an alias of /usr/lib there; Debian 13's by /usr/lib).
    unit_file = root.file("/usr/lib/systemd/system/devposture-agent.service")
    assert root.file(os.readlink(wants)).resolve() == unit_file.resolve()
    assert token.exists(), "nothing may have started the agent in a chroot"
    for doc in ("README", "copyright", "changelog.Debian.gz"):
        assert root.file(f"/usr/share/doc/devposture-agent/{doc}").is_file(), doc

    # The release's own systemd checks the installed units (their programs exist now).
    for name in ("devposture-agent.service", "devposture-collector.service"):
        path = f"/usr/lib/systemd/system/{name}"
        verify = root.run("systemd-analyze", "verify", path, check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr

    report = json.loads(root.run(AGENT, "collect", "--json").stdout)
    assert report["host"]["osFamily"] == "OS_FAMILY_LINUX" and report["reportId"]
    loader_errors = [e for e in json.dumps(report).split('"') if "shared librar" in e]
    assert not loader_errors, loader_errors  # the tools it ran loaded the system's libraries

    # Started as systemd would: it enrolls with the file, deletes it, reports.
    unit = Unit.parse(root.file("/usr/lib/systemd/system/devposture-agent.service").read_text())
    assert unit.exec_start[0] == "/opt/devposture-agent/bin/devposture-agent"
    notify = NotifySocket(root.file("/run/devposture-test/agent.sock"))
    agent = root.start(unit, "agent", notify)
    notify.wait_for("READY=1", agent, EVENT_TIMEOUT)
    wait_until(lambda: not token.exists(), "the enrollment file deleted", EVENT_TIMEOUT, 0.5)
    enrolled = device_id(root)
    wait_until(lambda: root.file(f"{STATE}/last-verdicts.pb").exists(),
               "the agent's report acknowledged", EVENT_TIMEOUT, 0.5)  # fmt: skip
    devices = stored_devices(root)
    assert [d for d in devices if d.get("device") == enrolled and d.get("last_report")], devices
    assert root.stop(agent) == 0, root.log("agent")
    log = root.log("agent")
    assert "dpe1." not in log and "dpt_" not in log, "the secret reached the log"

    # An employee's account, without sudo, reads what root reads: the copy of what `status`
    # shows that the service published for every user, beside the state it cannot read.
    root.run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "employee")
    published = root.file("/run/devposture-agent/status.json")
    assert published.stat().st_mode & 0o777 == 0o644 and state.stat().st_mode & 0o777 == 0o700
    as_root = root.run(AGENT, "status", check=False)
    as_employee = root.run(AGENT, "status", user="employee", check=False)
    assert as_root.returncode in (3, 4), as_root.stdout + as_root.stderr
    assert (as_employee.stdout, as_employee.returncode) == (as_root.stdout, as_root.returncode), (
        as_employee.stderr)  # fmt: skip

    # A newer build upgrades in place: same device, and it still reports as that device.
    out = dpkg(root, "-i", package=upgrade_packages["agent.deb"])
    assert "0.1.0-2" in root.run("dpkg-query", "-W", "devposture-agent").stdout, out
    assert device_id(root) == enrolled
    once = root.run(AGENT, "once")
    assert "acknowledged" in once.stdout, once.stdout + once.stderr

    # Remove keeps the identity; purge deletes it and any secret left.
    dpkg(root, "-r", "devposture-agent")
    assert not root.file("/opt/devposture-agent").exists()
    assert device_id(root) == enrolled
    token.parent.mkdir(exist_ok=True)  # the empty folder went with the package
    token.write_text("dpe1.left-behind\n")
    dpkg(root, "-P", "devposture-agent")
    assert not state.exists() and not token.exists()
    assert not root.file("/etc/systemd/system/devposture-agent.service").is_symlink()
    assert not wants.is_symlink()

    # The collector likewise: remove keeps its data (CA, database), purge deletes it.
    assert root.stop(collector) == 0, root.log("collector")
    # The installed program's audit evidence, deflated and inflated by ISA-L (whose compiled
    # modules import each other where the freeze cannot see), its lines parsed by orjson and
    # its bodies decoded by pybase64 (compiled too): exported, verified, and the agent's
    # reports read back from it.
    bundle, key = "/tmp/evidence.zip", "/tmp/evidence-key.pem"
    root.run(COLLECTOR, "audit", "export", "--data", DATA, "--from", "2026-01-01",
             "--to", "2100-01-01", "--out", bundle, user="devposture-collector")  # fmt: skip
    public = root.run(COLLECTOR, "audit", "public-key", "--data", DATA, user="devposture-collector")
    root.file(key).write_text(public.stdout)  # the PEM alone (its fingerprint goes to stderr)
    verified = root.run(COLLECTOR, "audit", "verify", bundle, "--public-key", key)
    assert "VERIFIED" in verified.stdout, verified.stdout + verified.stderr
    facts = [json.loads(line) for line in root.run(COLLECTOR, "audit", "facts", bundle)
             .stdout.splitlines() if line.strip()]  # fmt: skip
    assert facts and {f["facts"].get("device_id") for f in facts} == {enrolled}, facts[:1]
    dpkg(root, "-r", "devposture-collector")
    assert root.file(f"{DATA}/collector.toml").exists()
    dpkg(root, "-P", "devposture-collector")
    assert not root.file(DATA).exists()
    assert re.search(r"^devposture-collector:", root.file("/etc/passwd").read_text(), re.M)


def test_the_installed_collector_keeps_its_database_in_postgresql(
    root: DebianRoot, packages: dict[str, Path], postgresql_database: str
) -> None:
    dpkg(root, "-i", package=packages["collector.deb"])
    # No PostgreSQL client library in the root: psycopg can only use the package's own libpq
    # (psycopg_binary's), not ctypes over a system one.
    assert "libpq" not in root.run("ldconfig", "-p").stdout
    init = root.run(COLLECTOR, "init", "--data", DATA, "--database", postgresql_database,
                    user="devposture-collector")  # fmt: skip
    assert f"Database: {postgresql_database}" in init.stdout, init.stdout
    assert not [p.name for p in root.file(DATA).iterdir() if p.suffix == ".db"]

    # An enrollment token made by the installed collector lands in that database too.
    created = root.run(COLLECTOR, "token", "create", "--data", DATA,
                       user="devposture-collector")  # fmt: skip
    assert created.stdout.strip(), created.stderr
    with psycopg.connect(postgresql_database) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )}  # fmt: skip
        versions = connection.execute("SELECT version FROM schema_version").fetchall()
        tokens = connection.execute("SELECT count(*) FROM enrollment_tokens").fetchone()
    assert {"schema_version", "enrollment_tokens", "devices", "reports", "check_results",
            "audit_log", "evidence_chain"} <= tables, tables  # fmt: skip
    assert len(versions) == 1, versions
    assert tokens == (1,)
