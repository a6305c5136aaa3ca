"""dnf (Fedora, RHEL 8/9): `dnf -q updateinfo list --security` and `dnf -q check-update`.

updateinfo prints one advisory per package:
    FEDORA-2021-08cdb4dc34 Important/Sec. dhcp-client-12:4.4.2-11.b1.fc34.x86_64
(RHEL prints RHSA-YYYY:NNNN ids). check-update prints "name.arch  version  repo" and exits 100
when updates are pending, 0 when none; its "Obsoleting Packages" section repeats packages and
is not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.parsers.errors import ParseError

_NOISE = ("Last metadata expiration check", "Updating Subscription Management", "Security:")
_PACKAGE_LINE = re.compile(
    r"^(?P<name>\S+)\.(?P<arch>[A-Za-z0-9_]+)\s+(?P<version>\S+)\s+(?P<repo>\S+)$"
)


@dataclass(frozen=True)
class Advisory:
    advisory_id: str
    severity: str  # "Important", "Moderate", ... ("" when dnf gives none)
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


def parse_updateinfo_security(text: str) -> list[Advisory]:
    advisories = []
    for line in _relevant(text):
        fields = line.split()
        if len(fields) != 3 or not fields[1].endswith("/Sec."):
            raise ParseError("dnf updateinfo: a line is not 'ADVISORY Severity/Sec. PACKAGE'")
        severity = fields[1].removesuffix("/Sec.")
        advisories.append(Advisory(fields[0], severity, package_name(fields[2])))
    return advisories


def parse_check_update(text: str) -> list[str]:
    """Names of packages with an update pending."""
    names: list[str] = []
    for line in _relevant(text):
        if line.startswith("Obsoleting Packages"):
            break
        match = _PACKAGE_LINE.match(line)
        if not match:
            raise ParseError("dnf check-update: a line is not 'name.arch version repo'")
        names.append(match["name"])
    return names
