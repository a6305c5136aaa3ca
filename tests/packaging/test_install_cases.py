"""The agent's .deb and .rpm installed as IT installs them, on the machines IT really has.

test_linux_packages.py follows one device from install to purge on Debian 12 and 13. Here, on
a clean Debian 12 root (the maintainer scripts are shell and do not change between releases):

- a computer where the state folder and IT's folder were there before the package, with the
  wrong owner and mode (an old install, a restored backup, a folder made by hand): the
  package leaves them root's and private, their contents untouched;
- the .rpm installed for real with `rpm --root`, its scriptlets run inside the root (chroot,
  /bin/sh): install, upgrade, reinstall and erase, and what each leaves behind. The root
  has no RPM database of its system libraries, so dependencies are not checked
  (`--nodeps`); test_package_checks.py reads them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import rootfs, unavailable
from tests.packaging.linux_root import DebianRoot, debian_root

pytestmark = pytest.mark.slow

STATE = "/var/lib/devposture-agent"
CONFIG = "/etc/devposture"
WANTS = "/etc/systemd/system/multi-user.target.wants/devposture-agent.service"
# An employee's account: uid 1000 on any desktop Linux.
EMPLOYEE = 1000


@pytest.fixture
def root() -> Iterator[DebianRoot]:
    tarball = rootfs("bookworm")
    with (
        tempfile.TemporaryDirectory(prefix="dp-root-") as folder,
        debian_root(tarball, Path(folder) / "bookworm") as unpacked,
    ):
        yield unpacked


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def wrong_folders(root: DebianRoot) -> dict[Path, bytes]:
    """The state folder and IT's folder as a careless earlier hand left them: an employee's,
    0777, with files in them. Returns the files and their contents."""
    files = {
        root.file(f"{STATE}/agent.json"): b'{"device_id": "kept"}\n',
        root.file(f"{CONFIG}/agent.toml"): b'[collector]\naddresses = ["c.example:7443"]\n',
    }
    for path, data in files.items():
        path.parent.mkdir(mode=0o777, parents=True, exist_ok=True)
        path.parent.chmod(0o777)
        path.write_bytes(data)
        for made in (path, path.parent):
            made.chmod(0o777 if made.is_dir() else 0o644)
            # From the host: the root's owners are numbers, the same on both sides.
            os.chown(made, EMPLOYEE, EMPLOYEE)
    return files


def assert_made_private(root: DebianRoot, files: dict[Path, bytes]) -> None:
    assert owner_and_mode(root.file(STATE)) == (0, 0, 0o700)
    # IT's folder: root's, writable by root only (the rest of its mode is IT's choice).
    uid, gid, mode = owner_and_mode(root.file(CONFIG))
    assert (uid, gid) == (0, 0) and not mode & 0o022, oct(mode)
    assert {path: path.read_bytes() for path in files} == files  # contents untouched


def test_the_deb_makes_folders_that_were_there_root_s_and_private(
    root: DebianRoot, packages: dict[str, Path]
) -> None:
    files = wrong_folders(root)
    (root.file("/tmp") / "agent.deb").write_bytes(packages["agent.deb"].read_bytes())
    root.run("dpkg", "-i", "/tmp/agent.deb")
    assert_made_private(root, files)


def rpm(root: DebianRoot, *argv: str) -> str:
    """The host's rpm, on the root's own database; scriptlets run chrooted into the root."""
    tool = shutil.which("rpm")
    if tool is None:
        unavailable("rpm is not installed (Debian package rpm)")
    assert tool is not None
    done = subprocess.run([tool, "--root", str(root.path), "--dbpath", "/var/lib/rpm", *argv],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, f"rpm {' '.join(argv)}: {done.stdout}{done.stderr}"
    return done.stdout


def left_of_the_package(root: DebianRoot) -> list[str]:
    """Every path named after the package outside the state folder and /tmp."""
    found = []
    for top in ("etc", "opt", "usr", "var"):
        for path in root.file(top).rglob("*devposture*"):
            inside = "/" + path.relative_to(root.path).as_posix()
            if not inside.startswith(STATE):
                found.append(inside)
    return sorted(found)


def test_the_rpm_installs_upgrades_reinstalls_and_erases_for_real(
    root: DebianRoot, packages: dict[str, Path], upgrade_packages: dict[str, Path]
) -> None:
    # rpm opens the package files itself, from the host.
    first, second = str(packages["agent.rpm"]), str(upgrade_packages["agent.rpm"])
    files = wrong_folders(root)
    rpm(root, "--initdb")

    # Fresh install: folders made safe, the unit enabled (nothing started: no systemd runs).
    rpm(root, "-i", "--nodeps", first)
    assert_made_private(root, files)
    assert root.file(WANTS).is_symlink()
    assert root.run("devposture-agent", "--version").stdout.startswith("devposture-agent ")

    # Upgrade: the state and IT's settings stay, the unit stays enabled.
    rpm(root, "-U", "--nodeps", second)
    assert rpm(root, "-q", "devposture-agent").strip() == "devposture-agent-0.1.0-2.x86_64"
    assert_made_private(root, files)
    assert root.file(WANTS).is_symlink()

    # The same version again (dnf reinstall): nothing lost.
    rpm(root, "--reinstall", "--nodeps", second)
    assert_made_private(root, files)
    assert root.file(WANTS).is_symlink()

    # Erase: disabled, and nothing of the package left but the state (RPM has no purge) and
    # IT's own file in its folder.
    rpm(root, "-e", "devposture-agent")
    assert {path: path.read_bytes() for path in files} == files
    assert left_of_the_package(root) == [CONFIG]  # holding agent.toml
