"""`rpm -q --queryformat FORMAT NAME...`: which of the named packages rpm's database holds, at
which version.

What rpm 4.18 prints, as recorded in tests/fixtures/linux/rpm/:

  * one line in FORMAT for every installed instance of a named package: two versions installed
    side by side, or one version for two architectures (x86_64 and i686), are two lines. EPOCH
    reads "(none)" for a package without one; VERSION never holds the epoch.
  * "package NAME is not installed" on stdout for each name it does not hold (in English under
    LC_ALL=C, as the agent runs it; rpm translates it otherwise).
  * an exit status that counts those names (three not installed, status 3), not 1.
  * when it cannot open its database: "error: ..." lines on stderr, while stdout and the exit
    status read exactly as if no name were installed. So stderr is read too
    (`database_errors`), or a broken database would pass for "none installed".

rpm also answers a name that is a package's name-version ("wechat-4.1.1.8" finds wechat), so a
listed package is accepted when its NAME is one of the names asked.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

FORMAT = "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"
_NOT_INSTALLED = re.compile(r"package (?P<name>\S+) is not installed")
_NO_EPOCH = "(none)"
_MAX_STATUS = 255  # an exit status is one byte


@dataclass(frozen=True)
class RpmPackage:
    name: str
    epoch: int | None
    version: str
    release: str
    arch: str


def _package(cells: list[str]) -> RpmPackage:
    name, epoch, version, release, arch = cells
    if not (name and version and release and arch):
        raise ParseError("rpm: a package line has an empty cell")
    if epoch == _NO_EPOCH:
        return RpmPackage(name, None, version, release, arch)
    if not epoch.isdigit():
        raise ParseError("rpm: a package's epoch is not a number")
    return RpmPackage(name, int(epoch), version, release, arch)


def parse_rpm_query(stdout: str, returncode: int, names: Collection[str]) -> list[RpmPackage]:
    """The installed instances of `names`, in order. Raises ParseError on a line in neither of
    rpm's two shapes, on a name that was not asked, and on an exit status that does not count
    the names rpm said are not installed."""
    packages: list[RpmPackage] = []
    missing = 0
    for line in stdout.split("\n"):
        if not line.strip():
            continue
        cells = line.split("\t")
        absent = _NOT_INSTALLED.fullmatch(line.strip())
        if len(cells) == 5:
            package = _package(cells)
            named = package.name
            packages.append(package)
        elif absent is not None:
            named = absent.group("name")
            missing += 1
        else:
            raise ParseError("rpm: a line is neither a package nor 'package … is not installed'")
        if named not in names:
            raise ParseError("rpm: listed a package that was not asked for")
    if returncode != min(missing, _MAX_STATUS):
        raise ParseError("rpm: its exit status does not count the packages it did not find")
    return packages


def database_errors(stderr: str) -> list[str]:
    """rpm's "error:" lines: it could not read its database, whatever stdout says. Its
    "warning:" lines (an old Berkeley DB database read by a newer rpm) are not failures."""
    return [line.strip() for line in stderr.splitlines() if line.startswith("error:")]
