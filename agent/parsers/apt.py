"""apt: a simulated upgrade (`apt-get -s dist-upgrade`, holds and phasing ignored: every pending
update with its archives) and the merged configuration (`apt-config dump`).

A simulated upgrade prints one line per package it would install, e.g. (wrapped here)
    Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable,
         Debian-Security:12/oldstable-security [amd64])
The part in brackets is the installed version (absent for a newly pulled-in package); the
parenthesis names the candidate version, then the origins it comes from as "Origin:Version/
archive", comma-separated ("Origin" is the Release file's label; a Release file without a
Version gives "Origin:archive", one without a label no "Origin:"). An update is a security
update when one of its archives ends in "-security" (Debian 11 and later "bookworm-security",
Ubuntu "jammy-security", Ubuntu Pro "jammy-apps-security") or its label does: Debian 9 and 10
named the security archive after the release ("Debian-Security:10/stable", "Debian-Security:9/
oldstable"), so only the label tells. The summary line
    116 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
counts packages held back ("not upgraded"), which still wait to be installed. apt 3.0 rewrote
`apt`'s own output ("Summary:", "Upgrading: 5, Installing: 0, ..."), not apt-get's: that form
follows APT::Output-Version, which apt 3.x sets only for the `apt` binary or a configured
APT::Version (apt-private/private-cmndline.cc), and the simulation's Inst lines did not change.

Which archives apt has: the names of the Release files `apt update` leaves in
/var/lib/apt/lists, e.g. deb.debian.org_debian-security_dists_bookworm-security_InRelease for
"deb http://deb.debian.org/debian-security bookworm-security". apt names each file after its URI
with every "/" turned into "_" (a "_" of the URI itself is escaped, as %5f), so the name gives
back the site and the suite. A machine whose archives hold no security archive (Deepin's
apricot and beige, UOS's eagle, Kylin V10's 10.1 and its -updates: see docs/linux-updates.md)
cannot tell a security update from another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from devposture.agent.parsers.errors import ParseError

_INST = re.compile(
    r"^Inst (?P<name>\S+)(?: \[(?P<old>[^\]]*)\])?"
    r" \((?P<new>\S+) (?P<origins>.*) \[(?P<arch>[^\]]+)\]\)"
)
_SUMMARY = re.compile(
    r"^(\d+) upgraded, (\d+) newly installed, (\d+) to remove and (\d+) not upgraded\."
)
_ASSIGNMENT = re.compile(r'^(?P<key>\S+) "(?P<value>(?:[^"\\]|\\.)*)";$')


@dataclass(frozen=True)
class AptUpgrade:
    name: str
    new_version: str
    archives: tuple[str, ...]  # e.g. ("oldstable", "oldstable-security")
    is_upgrade: bool  # False for a package newly installed as a dependency
    labels: tuple[str, ...] = ()  # each archive's label, e.g. ("Debian", "Debian-Security")

    @property
    def security(self) -> bool:
        return any(_security_suite(a) for a in self.archives) or any(
            label.lower().endswith("-security") for label in self.labels
        )


def _security_suite(suite: str) -> bool:
    return suite.endswith("-security") or "-security-" in suite


@dataclass(frozen=True)
class AptPlan:
    upgrades: tuple[AptUpgrade, ...]
    upgraded: int
    newly_installed: int
    held_back: int

    @property
    def pending_total(self) -> int:
        return self.upgraded + self.held_back

    @property
    def security(self) -> tuple[AptUpgrade, ...]:
        return tuple(u for u in self.upgrades if u.security and u.is_upgrade)


def _origins(origins: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The archives and their labels ("" for none) of "Label:Version/archive, ...".

    apt builds each origin from its Release file (VerIterator::RelStr, apt-pkg/pkgcache.cc):
    "Label:" when it has a label, then "Version/Archive", or the archive alone when it has no
    Version field (Debian testing and unstable, "Debian:unstable"; Docker's archive, "Docker
    CE:jammy"), or, with no Release file, the site or "localhost". A label never holds "/"."""
    archives, labels = [], []
    for raw in origins.split(","):
        origin = raw.strip()
        if not origin:
            raise ParseError("apt: an empty origin")
        label, colon, rest = origin.partition(":")
        if not colon or "/" in label:
            label, rest = "", origin
        archives.append(rest.rsplit("/", 1)[-1])
        labels.append(label)
    return tuple(archives), tuple(labels)


@dataclass(frozen=True)
class AptArchive:
    """One archive apt fetched: "deb.debian.org/debian-security" and "bookworm-security"."""

    site: str
    suite: str

    @property
    def security(self) -> bool:
        """A suite named "-security" (Debian 11 and later, Ubuntu, openKylin's yangtze-security
        and nile-security), or Debian's security archive before Debian 11, whose suite was
        "<codename>/updates" under the debian-security path (or on security.debian.org)."""
        if _security_suite(self.suite):
            return True
        debian = self.site.endswith("/debian-security") or self.site == "security.debian.org"
        return debian and self.suite.endswith("/updates")

    def __str__(self) -> str:
        return f"{self.site} {self.suite}"


_RELEASE_FILES = ("_InRelease", "_Release")


def _unescaped(part: str) -> str:
    return unquote(part.replace("_", "/"))


def parse_list_names(names: Iterable[str]) -> tuple[AptArchive, ...]:
    """The archives named by the Release files among /var/lib/apt/lists' names, in order, each
    once. Other files (Packages, Contents, "lock", "partial") are not archives; a flat
    repository ("deb URI ./") has no suite, so it is not one either."""
    archives: dict[AptArchive, None] = {}
    for name in names:
        ending = next((e for e in _RELEASE_FILES if name.endswith(e)), None)
        if ending is None:
            continue
        site, dists, suite = name[: -len(ending)].rpartition("_dists_")
        if dists and site and suite:
            archives[AptArchive(_unescaped(site), _unescaped(suite))] = None
    return tuple(archives)


def parse_apt_simulate(text: str) -> AptPlan:
    upgrades: list[AptUpgrade] = []
    summary: tuple[int, ...] | None = None
    for line in text.splitlines():
        if line.startswith("Inst "):
            match = _INST.match(line)
            if not match:
                raise ParseError("apt: an 'Inst' line in an unknown format")
            archives, labels = _origins(match["origins"])
            upgrades.append(
                AptUpgrade(
                    name=match["name"],
                    new_version=match["new"],
                    archives=archives,
                    is_upgrade=match["old"] is not None,
                    labels=labels,
                )
            )
            continue
        found = _SUMMARY.match(line)
        if found:
            summary = tuple(int(g) for g in found.groups())
    if summary is None:
        raise ParseError("apt: no 'N upgraded, ... not upgraded.' summary line")
    upgraded, newly, _removed, held = summary
    if sum(u.is_upgrade for u in upgrades) != upgraded:
        raise ParseError("apt: the Inst lines do not add up to the summary")
    return AptPlan(tuple(upgrades), upgraded, newly, held)


def parse_apt_config(text: str) -> dict[str, str]:
    """`apt-config dump` as {key: value}; list entries ("Key::") keep their last value."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            values[match["key"]] = match["value"]
    if not values:
        raise ParseError("apt-config: no 'Key \"value\";' lines")
    return values


def periodic_enabled(value: str | None) -> bool:
    """APT::Periodic values are day intervals ("1", "7") or "always"; "0" or unset is off."""
    if value is None:
        return False
    value = value.strip().lower()
    return value not in ("", "0") and (value == "always" or value.rstrip("dhms").isdigit())
