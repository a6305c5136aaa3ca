"""firewalld's zones in force, read from real `firewall-cmd --list-all-zones` outputs
(tests/fixtures/linux/README.md: firewalld 1.3.3 recorded in network namespaces, a RHEL 10
machine's firewalld 2.4.3 and CentOS 7's 0.4-0.6 form from published transcripts)."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.firewalld import (
    firewalld_profile,
    parse_default_zone,
    parse_zones,
    zone_action,
)
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import fixture_text


def _profile(listing: str, default_zone: str) -> pb.FirewallProfile:
    zones = parse_zones(fixture_text(f"firewalld/firewall-cmd-list-all-zones-{listing}.out"))
    return firewalld_profile(True, default_zone, zones)


def _in_force(profile: pb.FirewallProfile) -> list[tuple[str, str, str, list[str], bool]]:
    return [
        (z.name, z.target, z.default_inbound_action, list(z.interfaces), z.is_default)
        for z in profile.zones
    ]


def test_a_laptop_whose_networks_sit_in_rejecting_zones_is_filtered() -> None:
    default = parse_default_zone(
        fixture_text("firewalld/firewall-cmd-get-default-zone-public-debian12.out")
    )
    profile = _profile("laptop-debian12", default)
    assert profile.enabled and profile.active
    assert profile.default_inbound_action == "reject"
    assert _in_force(profile) == [
        ("home", "default", "reject", ["wlp2s0"], False),
        ("public", "default", "reject", ["enp0s31f6"], True),
    ]


def test_a_wifi_in_the_trusted_zone_is_an_open_path_though_the_default_zone_rejects() -> None:
    # The default zone's name (public) said "filters" before; the Wi-Fi never met it.
    profile = _profile("wifi-trusted-debian12", "public")
    assert not profile.enabled
    assert profile.default_inbound_action == "reject"
    assert _in_force(profile)[0] == ("trusted", "ACCEPT", "allow", ["wlp2s0"], False)


def test_public_set_to_accept_is_read_by_its_target_not_its_name() -> None:
    # `firewall-cmd --permanent --zone=public --set-target=ACCEPT`, then --reload.
    profile = _profile("public-accept-debian12", "public")
    assert not profile.enabled
    assert profile.default_inbound_action == "allow"
    assert _in_force(profile) == [("public", "ACCEPT", "allow", ["enp0s31f6", "wlp2s0"], True)]


def test_the_default_zone_counts_with_no_interface_bound_to_it() -> None:
    # A machine without NetworkManager: no interface is bound, all of them take the default.
    default = parse_default_zone(
        fixture_text("firewalld/firewall-cmd-get-default-zone-trusted-debian12.out")
    )
    profile = _profile("default-trusted-debian12", default)
    assert not profile.enabled
    assert _in_force(profile) == [("trusted", "ACCEPT", "allow", [], True)]


def test_an_accept_zone_that_ends_with_a_catch_all_reject_rule_filters() -> None:
    # NetworkManager's hotspot zone nm-shared: target ACCEPT, then rule priority="32767" reject.
    profile = _profile("hotspot-nm-shared-debian12", "public")
    assert profile.enabled
    assert _in_force(profile)[0] == ("nm-shared", "ACCEPT", "reject", ["wlp2s0"], False)


def test_dockers_zone_holds_its_own_bridges_not_a_network() -> None:
    profile = _profile("docker-debian12", "public")
    assert profile.enabled
    assert [z.name for z in profile.zones] == ["public"]
    listing = fixture_text("firewalld/firewall-cmd-list-all-zones-docker-debian12.out")
    docker = next(z for z in parse_zones(listing) if z.name == "docker")
    assert zone_action(docker) == "allow"
    assert docker.interfaces == ("br-5c0a3a1b9f2e", "docker0")


def test_firewalld_2_4_on_rhel_10_with_its_default_mark_and_rich_rules() -> None:
    listing = fixture_text("firewalld/firewall-cmd-list-all-zones-el10-labserver.out")
    zones = {z.name: z for z in parse_zones(listing)}
    assert len(zones) == 10
    # nm-shared's catch-all reject refuses; public's rich rule allows one source: no catch-all.
    assert zone_action(zones["nm-shared"]) == "reject"
    assert zones["public"].rich_rules == (
        'rule family="ipv4" source address="192.168.254.0/24" service name="ntp" accept',
    )
    assert zone_action(zones["trusted"]) == "allow"
    profile = firewalld_profile(True, "public", list(zones.values()))
    assert profile.enabled
    assert _in_force(profile) == [("public", "default", "reject", ["enp0s3"], True)]


def test_firewalld_0_4_to_0_6_on_centos_7_with_its_empty_tab_lines() -> None:
    zones = parse_zones(fixture_text("firewalld/firewall-cmd-list-all-zones-centos7.out"))
    assert [z.name for z in zones][:3] == ["block", "dmz", "drop"]
    assert all(z.rich_rules == () for z in zones)
    profile = firewalld_profile(True, "public", zones)
    assert profile.enabled
    assert _in_force(profile) == [("public", "default", "reject", ["ens33"], True)]


def test_firewalld_before_0_4_3_prints_no_target_unknown_not_a_guess() -> None:
    # firewalld 0.3.9 (CentOS 7.2) `--list-all`: the same printer, without a target.
    zones = parse_zones(fixture_text("firewalld/firewall-cmd-list-all-centos7.2.out"))
    assert [(z.name, z.target, z.interfaces) for z in zones] == [
        ("public", "", ("eno16777736", "eno33554960"))
    ]
    with pytest.raises(ParseError, match="no target for zone public"):
        firewalld_profile(True, "public", zones)


def test_a_default_zone_missing_from_the_listing_is_unknown() -> None:
    # Fedora Workstation's default zone, asked of the RHEL 10 listing, which has no such zone.
    zones = parse_zones(fixture_text("firewalld/firewall-cmd-list-all-zones-el10-labserver.out"))
    with pytest.raises(ParseError, match="not in --list-all-zones"):
        firewalld_profile(True, "FedoraWorkstation", zones)


def test_nothing_printed_is_unknown() -> None:
    stopped = fixture_text("firewalld/firewall-cmd-list-all-zones-stopped-debian12.out")
    with pytest.raises(ParseError, match="no zone"):
        parse_zones(stopped)
