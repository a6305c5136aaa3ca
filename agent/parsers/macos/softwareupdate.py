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
  * a macOS point update of the installed major version is a security update: every macOS
    point release since 2019 lists security fixes in Apple's "Apple security releases". The
    installed version is the Mac's own (SystemVersion.plist's ProductVersion, which the agent
    already reads for HostInfo), never guessed from the list: a macOS entry of a higher major
    version ("macOS Sonoma 14.0", "macOS Sequoia 15.3.1", "macOS 27") is an upgrade to a new
    major version, not a missing security update, even when it is the only macOS entry. A
    fully patched Sonoma Mac offered only "macOS Tahoe 26.x" has nothing pending for security.
    (Real lists: Macjutsu/super#151 and #290 offer the next major, or the one after it, beside
    the installed line's point update; a Tahoe 26.6 Mac is offered 26.7 and "macOS 27".) When
    the installed version cannot be read, a macOS entry cannot be told from an upgrade, and the
    count is a ParseError rather than a guess. "10.16" is not a version a Mac runs: it is what
    macOS 11 and later report to programs in compatibility mode (SYSTEM_VERSION_COMPAT, or a
    program built with an older SDK: pyinstaller/pyinstaller#6329, osquery/osquery#6840), so it
    is treated as unreadable, as is a major of 16 to 25, a Darwin kernel release;
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
# "macOS Ventura 13.6", "macOS Sequoia 15.3.1", and since macOS 27 a name without a codename,
# "macOS 27" (a capture on a Tahoe 26.6 Mac; see tests/fixtures/macos/README.md).
_MACOS = re.compile(
    r"^macOS(?: [A-Za-z][A-Za-z ]*?)? (?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?\b"
)
_PRODUCT_VERSION = re.compile(r"^(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?$")
# What macOS 11 and later report in compatibility mode (see the module docstring).
_COMPAT_VERSION = (10, 16)
# macOS went from 15 (Sequoia) to 26 (Tahoe): a major of 16 to 25 is no macOS version, but the
# Darwin kernel release (20 to 25 for macOS 11 to 26) the host layer falls back to when
# platform.mac_ver() answers nothing. Read as macOS, it would call every point update an upgrade.
_NEVER_MACOS = range(16, 26)
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
            return int(match["major"]), int(match["minor"] or 0), int(match["patch"] or 0)
    return None


def installed_version(product_version: str) -> tuple[int, int, int]:
    """The Mac's own version ("14.7.4", "15.5", "26") as numbers. Raises ParseError for
    anything else, and for 10.16, macOS's compatibility answer (see the module docstring)."""
    match = _PRODUCT_VERSION.match(product_version.strip())
    if not match:
        raise ParseError(f"macOS product version {product_version.strip()!r} is not a version")
    version = int(match["major"]), int(match["minor"] or 0), int(match["patch"] or 0)
    if version[:2] == _COMPAT_VERSION:
        raise ParseError(
            "macOS reported 10.16, its compatibility answer, not the installed version"
        )
    if version[0] in _NEVER_MACOS:
        raise ParseError(f"{product_version.strip()!r} is a Darwin kernel release, not macOS's")
    return version


def security_updates(updates: list[PendingUpdate], product_version: str) -> list[PendingUpdate]:
    """The pending updates the module's security rule counts, given the installed macOS
    version (SystemVersion.plist's ProductVersion). Raises ParseError when a macOS entry needs
    the installed version and it cannot be read."""
    found: list[PendingUpdate] = []
    installed: tuple[int, int, int] | None = None
    for update in updates:
        names = f"{update.label} {update.title}"
        if "Security" in names or _RSR.search(names):
            found.append(update)
            continue
        version = _macos_version(update)
        if version is None:
            continue
        if installed is None:
            installed = installed_version(product_version)
        if version[0] == installed[0] and version > installed:
            found.append(update)
    return found
