"""Every repeated field of a report, held to the collector's limit on it.

The collector refuses a whole report one of whose repeated fields holds more items than
collector/validation.py allows (`MAX_ITEMS`, else `DEFAULT_MAX_ITEMS`): one item too many and
the device goes dark. This walks the proto's descriptor from PostureReport, so a repeated field
added later fails here until someone says how the agent bounds it. Each is named once: in CAPS,
with the agent's cap (its constant, imported: a change to it is checked again) or what bounds
it by nature, at most the collector's limit; or in GAPS, with what makes it grow unbounded. A
gap is a test expected to fail (strict xfail) until the agent caps the field. The limits are
read from the collector's own validation (imported in a test only: the agent never imports
the collector).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devposture.agent import sessions
from devposture.agent.parsers import firewalld
from devposture.agent.probes import (
    backup_volume,
    chat_backups,
    chat_clients,
    endpoint_protection,
    report_room,
    vpn_room,
    wifi_classify,
)
from devposture.agent.probes.linux import antivirus as linux_antivirus
from devposture.agent.probes.linux import firewall as linux_firewall
from devposture.agent.probes.linux import updates as linux_updates
from devposture.agent.probes.linux.av_products import LINUX_AV_PROCESSES
from devposture.agent.probes.macos import updates as mac_updates
from devposture.agent.probes.macos.av_products import MACOS_AV_PROCESSES
from devposture.agent.probes.windows import antivirus as windows_antivirus
from devposture.agent.probes.windows import firewall as windows_firewall
from devposture.agent.probes.windows import updates as windows_updates
from devposture.collector.validation import DEFAULT_MAX_ITEMS, MAX_ITEMS
from tests.collector.report_fields import PATHS


def _most_processes(table: dict[str, str]) -> int:
    """The most process names the table gives one product."""
    counts: dict[str, int] = {}
    for product in table.values():
        counts[product] = counts.get(product, 0) + 1
    return max(counts.values())


@dataclass(frozen=True)
class Cap:
    most: int
    why: str


CAPS: dict[str, Cap] = {
    "devposture.v1.AntivirusProduct.processes": Cap(
        max(
            len(linux_antivirus._CLAMAV_PROCESSES),
            _most_processes(LINUX_AV_PROCESSES),
            _most_processes(MACOS_AV_PROCESSES),
        ),
        "a product's known process names (ClamAV's three, the vendors' tables)",
    ),
    "devposture.v1.AntivirusProduct.health_issues": Cap(
        endpoint_protection.MAX_ISSUES,
        "mdatp's problems, at most MAX_ISSUES; Defender on Windows says one running mode",
    ),
    "devposture.v1.FirewallProfile.zones": Cap(firewalld.MAX_ZONES, "firewalld's zones in force"),
    "devposture.v1.FirewallZone.interfaces": Cap(firewalld.MAX_INTERFACES, "a zone's interfaces"),
    "devposture.v1.OsUpdatesFact.pending_security_names": Cap(
        max(linux_updates.MAX_NAMES, windows_updates.MAX_NAMES, mac_updates.MAX_NAMES),
        "the first MAX_NAMES names on every OS",
    ),
    "devposture.v1.WifiFact.sessions": Cap(sessions.MAX_SESSIONS, "the newest sessions kept"),
    "devposture.v1.WifiSession.classification_reasons": Cap(
        # The security words, the Windows category, a captive portal, the two words for a
        # hidden name, and the one pattern of the policy a name matches first.
        len(set(wifi_classify._SECURITY_REASONS.values())) + 5,
        "one per signal, each once (agent/sessions.py merges observations without repeats)",
    ),
    "devposture.v1.VpnFact.interfaces": Cap(vpn_room.MAX_INTERFACES, "those up kept first"),
    "devposture.v1.ChatBackupFact.backups": Cap(chat_backups.MAX_SETS, "plain and newest first"),
    "devposture.v1.ChatBackupFact.live_data": Cap(
        chat_backups.MAX_LIVE_DATA, "the most recently used accounts first"
    ),
    "devposture.v1.ChatBackupFact.skipped_reasons": Cap(
        chat_backups.MAX_SKIPPED_REASONS, "the first reasons; every skip is counted"
    ),
    "devposture.v1.DiskEncryptionFact.volumes": Cap(
        backup_volume.MAX_VOLUMES, "the volumes that matter first (agent/probes/volume_room.py)"
    ),
    "devposture.v1.AntivirusFact.products": Cap(
        max(
            windows_antivirus.MAX_PRODUCTS,
            # ClamAV or XProtect, mdatp, and one per product of the vendors' tables.
            2 + len(set(LINUX_AV_PROCESSES.values())),
            2 + len(set(MACOS_AV_PROCESSES.values())),
        ),
        "Windows: those protecting first; Linux and macOS: one per known product",
    ),
    "devposture.v1.ChatClientsFact.clients": Cap(
        chat_clients.MAX_CLIENTS, "those whose version is unknown and each app's oldest first"
    ),
    "devposture.v1.FirewallFact.profiles": Cap(
        max(linux_firewall.MAX_PROFILES, windows_firewall.MAX_PROFILES),
        "Linux: the tools' and open families' first, then the open cards, the rest counted;"
        " Windows: each distinct profile once",
    ),
    "devposture.v1.PostureReport.errors": Cap(
        report_room.MAX_ERRORS, "the first of each fact and source first (agent/collect.py)"
    ),
}

GAPS: dict[str, str] = {}


def _limit(name: str) -> int:
    return MAX_ITEMS.get(name, DEFAULT_MAX_ITEMS)


def _repeated() -> list[str]:
    """Every repeated field reachable from PostureReport (maps aside: the report has none),
    each once, from the report's own field walk (tests/collector/report_fields.py)."""
    found = [path[-1] for path in PATHS if path[-1].is_repeated]
    for field in found:
        message = field.message_type
        assert message is None or not message.GetOptions().map_entry, field.full_name
    return list(dict.fromkeys(field.full_name for field in found))


def test_every_repeated_field_is_named_once() -> None:
    every = _repeated()
    assert len(every) == len(set(every))
    assert set(CAPS).isdisjoint(GAPS)
    assert sorted(every) == sorted([*CAPS, *GAPS])


@pytest.mark.parametrize("name", sorted(CAPS))
def test_the_agent_keeps_within_the_collectors_limit(name: str) -> None:
    assert 0 < CAPS[name].most <= _limit(name), CAPS[name].why


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=why))
     for name, why in sorted(GAPS.items())],
)  # fmt: skip
def test_the_agent_caps_the_field(name: str) -> None:
    assert name in CAPS
