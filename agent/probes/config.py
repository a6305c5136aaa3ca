"""What the collector tells the probes (backup folders, Wi-Fi classification rules)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeConfig:
    # Extra folders where work-chat backups are kept, besides each OS's default locations.
    # "~" stands for every user's home folder.
    backup_folders: tuple[str, ...] = ()
    # SSIDs of the company's own networks: reported by name, classified TRUSTED.
    trusted_networks: tuple[str, ...] = ()
    # fnmatch patterns (case-sensitive) of public network names, e.g. "Starbucks*".
    public_network_patterns: tuple[str, ...] = ()
    # Key for hashing the names of other networks, so home SSIDs never leave the device.
    network_hash_key: bytes = b""
    # Upper bound for any one command a probe runs, in seconds.
    command_timeout: float = 10.0
    # The company's time zone (the policy's `time_zone`, an IANA name; "" before the first
    # configuration: Asia/Shanghai), in which a time the agent writes for people is said.
    time_zone: str = ""
