"""The built packages and the Debian root filesystems the package tests use.

Both are cached outside the repository ($DEVPOSTURE_CACHE, /var/cache/devposture-ci as root):
the packages by a hash of their sources (installers/linux/packages.py), the roots once per
Debian release (installers/linux/make-rootfs.sh; .ci/run makes them before the tests). What
these tests need (root, chroot, dpkg, debootstrap, Debian's python3.11) is on CI; elsewhere a
missing piece skips them with the reason, and on CI (CI set) it fails them instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.caches import cache_dir

REPO = Path(__file__).resolve().parents[2]
LINUX = REPO / "installers" / "linux"
SUITES = ("bookworm", "trixie")


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it: see .ci/run)")
    pytest.skip(reason)


def require_linux_build() -> None:
    if sys.platform != "linux":
        pytest.skip("the Linux packages are built and installed on Linux")
    missing = [tool for tool in ("objdump", "dpkg-deb") if shutil.which(tool) is None]
    if not Path("/usr/bin/python3.11").exists():
        missing.append("/usr/bin/python3.11 (python3.11-venv)")
    if missing:
        unavailable(f"building the packages needs {', '.join(missing)}")


def build(out: Path, release: str) -> dict[str, Path]:
    """`installers/linux/packages.py` (what `make packages` runs) into `out`."""
    require_linux_build()
    done = subprocess.run(
        [sys.executable, str(LINUX / "packages.py"), "--out", str(out), "--release", release],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = {}
    for path in out.iterdir():
        if path.suffix == ".whl":
            found[path.name.split("-")[0]] = path  # devposture_agent ...
        elif path.suffix in (".deb", ".rpm"):
            program = "agent" if path.name.startswith("devposture-agent") else "collector"
            found[f"{program}{path.suffix}"] = path  # agent.deb, collector.rpm ...
    return found


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The packages and wheels of this tree, release 1: agent.deb, agent.rpm, collector.deb,
    collector.rpm, devposture_common, devposture_agent, devposture_collector."""
    return build(tmp_path_factory.mktemp("dist"), "1")


@pytest.fixture(scope="session")
def upgrade_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tree built as release 2: a newer package to upgrade to."""
    return build(tmp_path_factory.mktemp("dist-upgrade"), "2")


def rootfs(suite: str) -> Path:
    """The cached root filesystem tarball of `suite`, made now if missing (needs root)."""
    if sys.platform != "linux" or os.geteuid() != 0:
        unavailable("installing into a root filesystem needs root (chroot, mount)")
    tarball = cache_dir() / "rootfs" / f"{suite}.tar"
    if not tarball.exists():
        if shutil.which("debootstrap") is None:
            unavailable(f"no {tarball} and no debootstrap to make it (apt-get install debootstrap)")
        done = subprocess.run(
            [str(LINUX / "make-rootfs.sh"), suite, str(cache_dir())],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    return tarball
