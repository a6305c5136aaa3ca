"""The facts a report carries, the order they are collected in, and their report fields.

Order matters: disk encryption before chat backups (a backup on a LUKS volume is encrypted)
and VPN before Wi-Fi (a session records whether a VPN was up)."""

from __future__ import annotations

from devposture.v1 import devposture_pb2 as pb

ORDER: tuple[pb.Fact.ValueType, ...] = (
    pb.FACT_DISK_ENCRYPTION,
    pb.FACT_VPN,
    pb.FACT_ANTIVIRUS,
    pb.FACT_FIREWALL,
    pb.FACT_OS_UPDATES,
    pb.FACT_WIFI,
    pb.FACT_CHAT_BACKUPS,
    pb.FACT_CHAT_CLIENTS,
)

FIELDS: dict[pb.Fact.ValueType, str] = {
    pb.FACT_ANTIVIRUS: "antivirus",
    pb.FACT_FIREWALL: "firewall",
    pb.FACT_OS_UPDATES: "os_updates",
    pb.FACT_WIFI: "wifi",
    pb.FACT_VPN: "vpn",
    pb.FACT_CHAT_BACKUPS: "chat_backups",
    pb.FACT_DISK_ENCRYPTION: "disk_encryption",
    pb.FACT_CHAT_CLIENTS: "chat_clients",
}
