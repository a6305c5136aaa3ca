"""`dpkg-query -W -f='${Package}\\t${db:Status-Status}\\t${Version}\\n' NAME...`: which of the
named packages dpkg knows, in which state, at which version.

dpkg-query prints one line per named package it has a record of, and nothing on stdout for a
name it has never seen ("dpkg-query: no packages found matching NAME" goes to stderr, in the
machine's language, and the exit status is 1). So the answer is read from stdout alone: a
name without a line is not installed. A package removed without purging keeps a line with
status "config-files" (its configuration stays, its program is gone) and one that was
selected but never unpacked says "not-installed": neither is an installed client. Every other
status (installed, unpacked, half-configured, half-installed, triggers-awaiting,
triggers-pending) means the package's files are on disk, so it counts, with its version.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

FORMAT = "${Package}\\t${db:Status-Status}\\t${Version}\\n"
_GONE = frozenset({"not-installed", "config-files"})
_STATUSES = _GONE | {
    "installed",
    "unpacked",
    "half-configured",
    "half-installed",
    "triggers-awaiting",
    "triggers-pending",
}


@dataclass(frozen=True)
class DpkgPackage:
    name: str
    status: str
    version: str

    @property
    def on_disk(self) -> bool:
        return self.status not in _GONE


def parse_dpkg_query(text: str) -> list[DpkgPackage]:
    """The packages listed, in order. Raises ParseError on a line not in FORMAT's shape."""
    packages: list[DpkgPackage] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 3 or not cells[0]:
            raise ParseError("dpkg-query: a line is not package, status and version")
        name, status, version = cells
        if status not in _STATUSES:
            raise ParseError("dpkg-query: unknown package status")
        packages.append(DpkgPackage(name, status, version.strip()))
    return packages
