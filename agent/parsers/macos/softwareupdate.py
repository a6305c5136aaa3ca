"""`softwareupdate -l`: pending Apple updates, or why the catalog could not be read.

Two real layouts:
    * Label: macOS Ventura 13.6-22G120                                 (macOS 10.15 and later)
        Title: macOS Ventura 13.6, Version: 13.6, Size: 594108KiB, Recommended: YES, ...
    * iTunesX-12.0                                                     (OS X 10.14 and older)
        iTunes (12.0), 160725K [recommended] [restart]
"No new software available." (on stderr) is the only positive evidence of "nothing pending".
Any other line the tool prints after "Finding available software" is a failure to read the
catalog ("The operation couldn't be completed. (NSURLErrorDomain ...)", "Can't connect ..."):
the tool may still exit 0 (field notes), so it is reported as `catalog_error`, never as zero
updates.

Security rule (documented because Apple's list does not say which updates are security ones):
  * a label or title containing "Security" (Security Update 2022-001, macOS Security Response
    13.4.1 (c), i.e. Rapid Security Responses), or an "(a)".."(z)" Rapid Security Response
    suffix, is a security update;
  * a macOS point update is a security update: every macOS point release since 2019 lists
    security fixes in Apple's "Apple security releases". Among the "macOS <Name> X.Y" entries
    the lowest major version X is the installed line (softwareupdate only offers point updates
    for it); entries of a higher major are upgrades to a new major version and X.0 is always
    an upgrade, so neither counts;
  * everything else (Safari, Command Line Tools, iTunes) is not counted, though it may carry
    fixes: the list gives no way to tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from devposture.agent.parsers.errors import ParseError

NO_UPDATES = "No new software available."
_BANNERS = (
    "Software Update Tool",
    "Copyright ",
    "Finding available software",
    "Software Update found the following new or updated software:",
)
# NSLog noise some builds print on stderr, e.g. "2024-02-12 07:12:07.968 softwareupdate[91464:...]".
_NSLOG = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+ softwareupdate\[")
_ENTRY = re.compile(r"^\s*[*-]\s+(?:Label:\s*)?(?P<label>\S.*?)\s*$")
_MACOS = re.compile(r"^macOS [A-Za-z ]+? (?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?")
_RSR = re.compile(r"\([a-z]\)")


@dataclass
class PendingUpdate:
    label: str
    title: str = ""
    recommended: bool = False
    restart: bool = False


@dataclass
class UpdateList:
    updates: list[PendingUpdate] = field(default_factory=list)
    catalog_error: str = ""  # first line that says the catalog could not be read


def _detail(update: PendingUpdate, line: str) -> None:
    text = line.strip()
    if text.startswith("Title:"):
        parts = dict(
            part.split(":", 1) for part in (p.strip() for p in text.split(",")) if ":" in part
        )
        update.title = parts.get("Title", "").strip()
        update.recommended = parts.get("Recommended", "").strip().upper() == "YES"
        update.restart = parts.get("Action", "").strip().lower() == "restart"
    else:  # "iTunes (12.0), 160725K [recommended] [restart]"
        update.title = text.split(",", 1)[0].strip()
        update.recommended = "[recommended]" in text
        update.restart = "[restart]" in text


def parse_update_list(stdout: str, stderr: str = "") -> UpdateList:
    result = UpdateList()
    saw_none = False
    current: PendingUpdate | None = None
    for raw in (stdout + "\n" + stderr).splitlines():
        line = raw.rstrip()
        if not line.strip() or _NSLOG.match(line) or line.startswith(_BANNERS):
            continue
        if line.strip() == NO_UPDATES:
            saw_none = True
            continue
        entry = _ENTRY.match(line)
        if entry and not line.startswith(("\t", "    ")):
            current = PendingUpdate(entry["label"])
            result.updates.append(current)
            continue
        if current is not None and line.startswith(("\t", "    ", "  ")):
            _detail(current, line)
            continue
        if not result.catalog_error:
            result.catalog_error = line.strip()[:200]
    if not result.updates and not saw_none and not result.catalog_error:
        raise ParseError("softwareupdate: neither updates nor 'No new software available.'")
    return result


def _macos_version(update: PendingUpdate) -> tuple[int, int, int] | None:
    for text in (update.title, update.label):
        match = _MACOS.match(text)
        if match:
            return int(match["major"]), int(match["minor"]), int(match["patch"] or 0)
    return None


def security_updates(updates: list[PendingUpdate]) -> list[PendingUpdate]:
    """The pending updates the module's security rule counts (see the module docstring)."""
    versions = {id(u): _macos_version(u) for u in updates}
    majors = [v[0] for v in versions.values() if v is not None]
    installed_major = min(majors) if majors else None
    found: list[PendingUpdate] = []
    for update in updates:
        names = f"{update.label} {update.title}"
        version = versions[id(update)]
        point_update = (
            version is not None
            and version[0] == installed_major
            and (version[1], version[2]) != (0, 0)
        )
        if "Security" in names or _RSR.search(names) or point_update:
            found.append(update)
    return found
