"""Real dpkg and rpm databases of a test's own, and a host whose probes read them.

dpkg: small packages built with dpkg-deb, installed with `dpkg --root` into a root whose status
starts with this machine's own entries for dpkg (and rpm, when asked), copied from
`dpkg-query -s`: a Debian system's database lists its own package manager. rpm: empty packages
built with rpmbuild from tests/fixtures/linux/rpm/recording.spec, installed with `rpm --dbpath
--justdb`. The probe's own commands then run for real against them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Sequence
from pathlib import Path

from devposture.agent.host import OK_ONLY, CommandResult, LiveHost
from tests.agent.replay import FIXTURES
from tests.conftest import installed_tool

RECORDING_SPEC = FIXTURES / "rpm" / "recording.spec"


def build_deb(tmp: Path, name: str, version: str, conffile: bool = False) -> Path:
    pkg = tmp / f"build-{name}"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: devposture tests <tests@example.invalid>\nDescription: test package\n"
    )
    if conffile:
        (pkg / "etc").mkdir()
        (pkg / "etc" / f"{name}.conf").write_text("x\n")
        (pkg / "DEBIAN" / "conffiles").write_text(f"/etc/{name}.conf\n")
    deb = tmp / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    return deb


def dpkg(root: Path, *args: str) -> None:
    subprocess.run(
        ["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless", *args],
        check=True,
        capture_output=True,
    )


def dpkg_root(where: Path, managers: Sequence[str] = ("dpkg",)) -> Path:
    """An empty dpkg database under `where`, holding this machine's own entries for
    `managers` (none: a database that is not the system's, as dpkg's on Fedora)."""
    root = where / "dpkg-root"
    for sub in ("updates", "info"):
        (root / "var/lib/dpkg" / sub).mkdir(parents=True)
    entries = [
        subprocess.run(
            ["dpkg-query", "-s", name], check=True, capture_output=True, text=True
        ).stdout.strip()
        for name in managers
    ]
    (root / "var/lib/dpkg/status").write_text("".join(f"{entry}\n\n" for entry in entries))
    return root


def build_rpm(
    topdir: Path, name: str, version: str, release: str, arch: str = "x86_64", epoch: str = ""
) -> Path:
    """An empty package with these header values, built by rpmbuild."""
    defines = {"_topdir": str(topdir), "pkgname": name, "pkgversion": version,
               "pkgrelease": release, **({"pkgepoch": epoch} if epoch else {})}  # fmt: skip
    argv = [installed_tool("rpmbuild"), "-bb", "--quiet", "--target", arch]
    for macro, value in defines.items():
        argv += ["--define", f"{macro} {value}"]
    subprocess.run([*argv, str(RECORDING_SPEC)], check=True, capture_output=True)
    (built,) = (topdir / "RPMS").glob(f"*/{name}-{version}-{release}.{arch}.rpm")
    return built


def rpm_database(where: Path, packages: Sequence[Path]) -> Path:
    """An rpm database of its own under `where`, holding `packages` (none: an empty one)."""
    dbpath = where / "rpmdb"
    rpm = installed_tool("rpm")
    subprocess.run([rpm, "--dbpath", str(dbpath), "--initdb"], check=True, capture_output=True)
    if packages:
        subprocess.run(
            [rpm, "--dbpath", str(dbpath), "-i", "--justdb", "--nodeps", "--ignorearch",
             *map(str, packages)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return dbpath


class PackageRootsHost(LiveHost):
    """This machine, except that dpkg-query reads the database under `dpkg_root` and rpm the one
    at `rpm_db` (each tool absent when None), flatpak is absent, and the people's homes are
    `homes`: the probe's own commands, run for real."""

    def __init__(
        self, dpkg_root: Path | None, rpm_db: Path | None = None, homes: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.dpkg_root = dpkg_root
        self.rpm_db = rpm_db
        self.homes = list(homes)
        self.calls: list[tuple[str, ...]] = []

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        if argv[0] == "dpkg-query":
            argv = [argv[0], f"--root={self.dpkg_root}", *argv[1:]]
        elif argv[0] == "rpm":
            argv = [argv[0], "--dbpath", str(self.rpm_db), *argv[1:]]
        return super().run(argv, timeout, ok_codes)

    def which(self, name: str) -> str | None:
        absent = {"flatpak"}
        if self.dpkg_root is None:
            absent.add("dpkg-query")
        if self.rpm_db is None:
            absent.add("rpm")
        return None if name in absent else super().which(name)

    def home_dirs(self) -> list[str]:
        return list(self.homes)
