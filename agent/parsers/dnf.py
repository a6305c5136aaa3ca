"""dnf (Fedora, RHEL 8/9/10): `dnf -q updateinfo list --security` and `dnf -q check-update`,
as dnf 4 and dnf 5 (`dnf` on Fedora 41 and later) print them.

updateinfo, dnf 4, one advisory per package:
    FEDORA-2021-08cdb4dc34 Important/Sec. dhcp-client-12:4.4.2-11.b1.fc34.x86_64
(RHEL prints RHSA-YYYY:NNNN ids). dnf 5 makes `updateinfo` an alias of `advisory` and prints a
table with a header and the issue date (columns narrowed here):
    Name                   Type     Severity  Package                      Issued
    FEDORA-2026-bc20b091a8 security Important kernel-core-7.0.10-201.fc44.x86_64 2026-05-27 16:06:31
Its columns are cut to the terminal's width ("secu Importan", dnf5#1501); a type is taken as
security when it is "security" or a cut-off start of it, and other types are not counted.

check-update prints "name.arch  version  repo" and exits 100 when updates are pending, 0 when
none. A name too long for its column goes alone on its line, the version and repository on the
next (the layout dnf 4 keeps from yum; calestyo/check_yum#22).
dnf 5 heads the list with "Upgrades". Both then list "Obsoleting Packages" (dnf 5:
"Obsoleting packages"), which repeats packages already listed and is not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

# Lines that say something about dnf, not about packages: the metadata age (dnf 4), the
# subscription manager (RHEL), the running kernel (dnf 4 "Security: kernel-... is an installed
# security update"), repository loading (dnf 5, printed unless -q).
_NOISE = (
    "Last metadata expiration check",
    "Updating Subscription Management",
    "Security:",
    "Updating and loading repositories:",
    "Repositories loaded.",
)
_PACKAGE_LINE = re.compile(
    r"^(?P<name>\S+)\.(?P<arch>[A-Za-z0-9_]+)\s+(?P<version>\S+)\s+(?P<repo>\S+)$"
)
_NAME_ALONE = re.compile(r"^\S+\.[A-Za-z0-9_]+$")  # a long name, wrapped before its version
_DNF5_HEADER = re.compile(r"^Name\s+Type\s+Severity\s+Package\s+Issued$")
_ISSUED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECURITY = "security"


@dataclass(frozen=True)
class Advisory:
    advisory_id: str
    severity: str  # "Important", "Moderate", ... as printed ("" when dnf gives none)
    package: str  # name without version, e.g. "dhcp-client"


def package_name(nevra: str) -> str:
    """ "dhcp-client-12:4.4.2-11.b1.fc34.x86_64" -> "dhcp-client"."""
    parts = nevra.rsplit("-", 2)
    if len(parts) != 3:
        raise ParseError("dnf: a package is not name-version-release.arch")
    return parts[0]


def _relevant(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith(_NOISE)
    ]


def _dnf4_advisory(fields: list[str]) -> Advisory | None:
    if len(fields) != 3 or not fields[1].endswith("/Sec."):
        return None
    return Advisory(fields[0], fields[1].removesuffix("/Sec."), package_name(fields[2]))


def _dnf5_advisory(fields: list[str]) -> Advisory | None:
    """None for a row of another type; ParseError for a row that is not one."""
    if len(fields) != 6 or not _ISSUED.match(fields[4]):
        raise ParseError("dnf advisory list: a row is not 'NAME TYPE SEVERITY PACKAGE ISSUED'")
    name, kind, severity, package = fields[:4]
    if not (len(kind) >= 3 and _SECURITY.startswith(kind)):
        return None
    return Advisory(name, "" if severity == "None" else severity, package_name(package))


def parse_updateinfo_security(text: str) -> list[Advisory]:
    """The security advisories listed, one per package, from dnf 4 or dnf 5 output."""
    advisories = []
    dnf5 = False
    for line in _relevant(text):
        if _DNF5_HEADER.match(line):
            dnf5 = True
            continue
        fields = line.split()
        found = _dnf5_advisory(fields) if dnf5 else _dnf4_advisory(fields)
        if found is None and not dnf5:
            raise ParseError("dnf updateinfo: a line is not 'ADVISORY Severity/Sec. PACKAGE'")
        if found is not None:
            advisories.append(found)
    return advisories


def parse_check_update(text: str) -> list[str]:
    """The packages with an update pending, as "name.arch" (a package updated for two
    architectures is two updates, as dnf lists and counts it)."""
    names: list[str] = []
    lines = _relevant(text)
    wrapped = ""
    for line in lines:
        if line.lower().startswith("obsoleting packages"):
            break
        if line == "Upgrades":  # dnf 5's heading
            continue
        if not wrapped and _NAME_ALONE.match(line):
            wrapped = line
            continue
        line = f"{wrapped} {line}" if wrapped else line  # noqa: PLW2901
        wrapped = ""
        match = _PACKAGE_LINE.match(line)
        if not match:
            raise ParseError("dnf check-update: a line is not 'name.arch version repo'")
        names.append(f"{match['name']}.{match['arch']}")
    if wrapped:
        raise ParseError("dnf check-update: a package name without its version and repository")
    return names
