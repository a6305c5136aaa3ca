"""The agent's own words inside a reason, said in the reader's language.

A report carries some English the agent wrote itself: why a fact could not be read ("nft is not
installed (not found on the search path)"), what a backup's first bytes showed ("ZIP archive
without encryption"), which Windows firewall profile is meant ("public"). The checks put these
into reason parameters of kind `phrase` or `phrases` (`reason_codes.py`), and `render` says each
one through `worded`: a phrase declared here is translated (msgctxt "phrase"), its parts in
braces kept as they came (a tool's name, a path, a number) or, for the parts that carry the
agent's words (`_NESTED`), worded in turn; any other text (a tool's own message, a product's)
is shown as it came.
Reports and stored reasons are unchanged, so reports from agents already installed read in
Chinese too.

The agent writes these in its own modules; `tests/policy/test_phrases.py` holds each place to
this list, so that a phrase the agent changes without changing it here is caught.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass

from devposture.policy.catalogs import Lang, closed_up, translate
from devposture.policy.moments import read_back

__all__ = ["CONTEXT", "PHRASES", "every_message", "is_phrase", "worded"]

CONTEXT = "phrase"
PHRASES: tuple[str, ...] = (
    # Windows' firewall profiles and macOS's application firewall (FirewallProfile.name).
    "domain", "private", "public", "application",
    # The host layer (agent/host/live.py, agent/probes/windows/commands.py).
    "{tool} is not installed (not found on the search path)",
    "{tool} could not be started: not found",
    "{tool} could not be started: permission denied",
    "{tool} did not finish within {seconds} s",
    "{tool} printed more than {size}: far more than any real output of it, so it was stopped"
    " and what it printed was not read",
    "{tool} exited with status {status}",
    "{tool} exited with status {status}: {output}",
    "{tool} was refused by Windows: {reason}",
    "{path} does not exist",
    "{path} is a folder, not a file",
    "{path} is not a folder",
    "permission denied reading {path}",
    "permission denied listing {path}",
    "permission denied inspecting {path}",
    "permission denied resolving {path}",
    "{path} is a loop of symbolic links",
    # A probe past its deadline (agent/probes/runner.py); {since} in the company's time zone
    # ("2026-12-05 17:00 (UTC+08:00)"; older agents wrote "2026-12-05 09:00:00 UTC").
    "{fact} probe did not finish within {seconds} s",
    "{fact} probe still running since {since}: it did not finish within {seconds} s then, and"
    " is not started again until it does",
    # Probes giving up on a fact or a source.
    "no firewall tool is installed ({tools})",
    "no supported package manager is installed (apt-get, dnf)",
    "neither dpkg-query nor rpm is installed: no package database can be read",
    "neither dpkg's nor rpm's database lists its own package manager: this system's package"
    " database was not read",
    "rpm could not read its package database",
    "rpm could not read its package database: {output}",
    "dpkg-query is not installed: only dpkg's package database is read on Linux",  # older agents
    "a wireless interface exists but nmcli (NetworkManager) is not installed",
    "Wi-Fi is connected but nmcli listed no access point in use",
    "cannot list network interfaces: {error}",
    "netsh wlan show interfaces: {error}",
    "the WLAN AutoConfig service (wlansvc) is not running, so Windows cannot report Wi-Fi;"
    " start the service to read it",
    "netsh needs location permission to read WLAN information (Windows 11 24H2); turn on"
    " location access for desktop apps",
    "ClamAV is installed but has no signature database",
    "freshclam.conf sets no UpdateLogFile: freshclam's update state is not read",
    "freshclam's log holds no finished update attempt",
    "XProtect.bundle was not found",
    "no antivirus source ran",
    "softwareupdate could not read Apple's update catalog: {detail}",
    "the Windows Update Agent search failed with {code} ({meaning})",
    "the Windows Update Agent search failed with {code}",
    "the Windows Update Agent search failed: it returned an update without UpdateID",
    "the Windows Update Agent search failed: {detail}",
    "WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT: the update server timed out",
    "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED: the proxy or update server name cannot be resolved",
    "ERROR_WINHTTP_TIMEOUT: the connection to the update server timed out",
    "ERROR_WINHTTP_NAME_NOT_RESOLVED: the update server name cannot be resolved",
    "the Windows Update service is disabled",
    # Why a chat client's version is unknown (agent/probes/*/chat_clients.py).
    "installed for one user only: the agent reads system-wide flatpak apps",
    "Info.plist has no {key}",
    "the Uninstall key names no folder and no version",
    "{location} holds the launcher but no version folder",
    "no version folder in {location}",
    "{reason}; the Uninstall key's DisplayVersion is not a version number",
    # Defender for Endpoint, in the agent's words (agent/parsers/mdatp.py, `problems`).
    "real-time protection enabled but not available",
    "real-time protection subsystem unavailable",
    "passive mode: detects but does not block or remediate",
    "not licensed (not onboarded to a tenant)",
    "mdatp reports the product unhealthy",
    # A backup's files and volume (agent/parsers/file_headers.py, agent/probes/chat_backups.py,
    # agent/probes/backup_volume.py).
    "empty file", "no files to sample", "unrecognised file header",
    "age encrypted file", "age encrypted file (armored)",
    "armored OpenPGP message (encrypted or only signed)",
    "OpenPGP message starting with {packet}",
    "public-key encrypted session key", "passphrase (symmetric-key) encrypted session key",
    "integrity-protected encrypted data", "AEAD encrypted data",
    "compressed data (not encrypted)",
    "SQLite format 3 header: plain database", "LUKS encrypted container",
    "RMFH header: a WeChat 4.x backup file, encrypted by WeChat (AES-GCM)",
    "OpenSSL enc encrypted file", "OpenSSL enc encrypted file (base64)",
    "xz stream: compressed, not encrypted", "zstd frame: compressed, not encrypted",
    "LZ4 frame: compressed, not encrypted", "lzip stream: compressed, not encrypted",
    "bzip2 stream: compressed, not encrypted", "gzip stream: compressed, not encrypted",
    "RAR archive: its encryption is not read",
    "7z archive: encryption not visible in its first bytes",
    "7z archive with AES-256 encryption", "7z archive without encryption",
    "7z archive with a compressed header: encryption of its contents not visible",
    "ZIP archive with WinZip AES encryption", "ZIP archive with encrypted entries",
    "ZIP archive without encryption", "ZIP archive with an entry not encrypted ({count} read)",
    "ZIP archive, all {count} entries encrypted",
    "ZIP archive: its first {count} entries encrypted, the rest not read",
    "ZIP archive: no file entry in its central directory",
    "weak evidence: the first bytes look random (high entropy, no known header), as in"
    " SQLCipher or other encrypted files",
    "base64 or hex text: encoded data, encrypted or not", "readable text: a plain export",
    "{evidence}; only the first {count} files were counted",
    "disk encryption could not be read", "no volume in the disk-encryption fact holds it",
    "on volume {device} mounted at {mount}, whose encryption is unknown",
    "on volume {device} mounted at {mount}, not encrypted",
    "on encrypted volume {device} mounted at {mount}",
    "on {method} volume {device} mounted at {mount}",
    "{evidence} (the files are really in {path})",
    "where the files really are is unknown: {error}",
    "which mount holds it is unknown: {error}",
    "{path}: this home folder cannot be read ({error}), so its chat backups are unknown: run"
    " the agent as its service (root)",
    "{path}: the moved data folder it names is unknown: {reason}",
    "{path}: holds files but no WeChat 4.x backup set (files/<n> with pkg_info.dat or"
    " pkg.attr), so what it holds is unknown",
    "{count} older backup set(s) not reported",
    "{count} of {total} chat accounts' data folders left out of the report (the collector takes"
    " {most}): the most recently used are kept",
    # The disk-encryption fact (agent/probes/volume_room.py, agent/probes/linux/disk.py).
    "{count} of {total} volumes left out of the report (the collector takes {most}): those"
    " holding the system, the homes and the chat backups are kept first",
    "zfs get does not list {count} mounted ZFS dataset(s): their encryption is unknown",
    # What else a report left out to stay within the collector's limits (agent/probes/
    # report_room.py, windows/antivirus.py, chat_clients.py, linux/firewall.py).
    "{count} of {total} errors left out of the report (the collector takes {most}): the first"
    " of each fact and of each source are kept",
    "{count} of {total} antivirus products left out of the report (the collector takes {most}):"
    " those protecting are kept first",
    "{count} of {total} chat clients left out of the report (the collector takes {most}): those"
    " whose version is unknown and each app's oldest are kept",
    # A PPP link up that no source tells from a dial-up (agent/probes/windows/vpn.py, linux/vpn.py).
    "{count} PPP connection(s) up that neither a phonebook entry nor the name tells from a"
    " broadband (PPPoE) or modem dial-up: not counted as a VPN",
    "{count} PPP link(s) up that cannot be told from a broadband (PPPoE) or modem dial-up: not"
    " counted as a VPN",
    # Linux's, by what keeps a link up from being told (agent/probes/linux/vpn.py, ppp_links.py).
    "PPP link(s) {interfaces} up with no pppd found that owns them: not counted as a VPN",
    "PPP link(s) {interfaces} up whose pppd options could not be read: not counted as a VPN",
    "PPP link(s) {interfaces} up whose pppd options name neither a VPN nor a dial-up: not counted"
    " as a VPN",
    "{count} of {total} open network cards left out of the report (the collector takes {most}"
    " firewall profiles): the firewall tools and the IP families are kept first",
)  # fmt: skip


def every_message() -> list[tuple[str, str]]:
    """(context, English msgid) of every phrase, for the catalogs."""
    facts = [(FACT_CONTEXT, word) for word in FACT_WORDS.values()]
    return [(CONTEXT, phrase) for phrase in PHRASES] + facts


@dataclass(frozen=True)
class _Template:
    english: str
    pattern: re.Pattern[str]


def _template(english: str) -> _Template:
    """A phrase with parts in braces as a pattern: each part any text (as short as the rest
    allows), the words around it as they are."""
    pattern = "".join(
        re.escape(words) + ("" if name is None else f"(?P<{name}>.+?)")
        for words, name, _, _ in string.Formatter().parse(english)
    )
    return _Template(english, re.compile(pattern, re.DOTALL))


_FIXED = frozenset(p for p in PHRASES if "{" not in p)


@functools.cache
def _templates() -> list[_Template]:
    """The phrases with parts, the most words first: "…failed with {code} ({meaning})" before
    "…failed with {code}". Made when a phrase is first read, not at import: their patterns
    took about 8 ms of the start of every command, most of which show no agent's phrase."""
    return sorted(
        (_template(p) for p in PHRASES if "{" in p),
        key=lambda t: -len(re.sub(r"\{[^}]*\}", "", t.english)),
    )


_DEPTH = 3  # a phrase inside a phrase inside a phrase, at most
# The parts that may hold a phrase in turn; any other (a tool, a path, a number, a tool's own
# output) is shown as it came, even when it happens to read like one ("public").
_NESTED = frozenset({"meaning", "evidence", "error", "reason", "detail", "packet"})
# The parts that are a list of names the agent joined with ", " ("nft, iptables, ufw"): the
# names as they came, joined as the reader's language enumerates ("nft、iptables、ufw").
_LISTS = frozenset({"tools"})
# The parts that are a time the agent wrote as every sentence does ("2026-12-05 17:00
# (UTC+08:00)"): its brackets as the reader's language writes them ("…17:00（UTC+08:00）").
_MOMENTS = frozenset({"since"})
# The part that names a fact by its enum name, as the agent writes it ("FACT_FIREWALL probe
# did not finish ..."): said as the fact's word in the reader's language (msgctxt "fact"),
# an employee never reading an enum name; a name not listed (a newer agent's) as it came.
FACT_CONTEXT = "fact"
FACT_WORDS: dict[str, str] = {
    "FACT_ANTIVIRUS": "antivirus", "FACT_FIREWALL": "firewall",
    "FACT_OS_UPDATES": "system updates", "FACT_WIFI": "Wi-Fi", "FACT_VPN": "VPN",
    "FACT_CHAT_BACKUPS": "chat backups", "FACT_DISK_ENCRYPTION": "disk encryption",
    "FACT_HOST": "host information", "FACT_CHAT_CLIENTS": "chat clients",
}  # fmt: skip


def _part(name: str, part: str, lang: Lang, depth: int) -> str:
    """One part in braces of a phrase, in `lang` (see `_NESTED` and `_LISTS`)."""
    if name in _NESTED:
        return _worded(part, lang, depth - 1)
    if name in _LISTS:
        return translate(lang, "join", ", ").join(part.split(", "))
    if name in _MOMENTS:
        moment = read_back(part)
        return part if moment is None else moment.worded(lang)
    if name == "fact" and part in FACT_WORDS:
        return translate(lang, FACT_CONTEXT, FACT_WORDS[part])
    return part


def worded(text: str, lang: Lang) -> str:
    """`text` in `lang` when it is one of the agent's phrases; as it came otherwise (English
    always: the agent writes English)."""
    return text if lang == "en" else _worded(text, lang, _DEPTH)


@functools.lru_cache(maxsize=4096)
def _worded(text: str, lang: Lang, depth: int) -> str:
    if text in _FIXED:
        return translate(lang, CONTEXT, text)
    if depth == 0:
        return text
    for template in _templates():
        found = template.pattern.fullmatch(text)
        if found is not None:
            parts = found.groupdict().items()
            said = {name: _part(name, part, lang, depth) for name, part in parts}
            return closed_up(translate(lang, CONTEXT, template.english), said).format(**said)
    return text


def is_phrase(text: str) -> bool:
    """Whether `text` is one of the declared phrases (worded, not shown as it came)."""
    return text in _FIXED or any(t.pattern.fullmatch(text) for t in _templates())
