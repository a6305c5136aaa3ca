"""Firewall parsers on outputs recorded from real tools (see tests/fixtures/linux/README.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.firewalld import firewalld_profile, parse_firewalld_state
from devposture.agent.parsers.inbound import IPV4, IPV6, InboundReading
from devposture.agent.parsers.iptables import parse_iptables_s, read_iptables_s
from devposture.agent.parsers.nft import parse_nft_json, read_nft_json
from devposture.agent.parsers.ufw import parse_ufw_status, read_ufw_status
from tests.agent.replay import fixture_text

Reader = Callable[[str], InboundReading]


def test_nft_input_policy_drop_filters_inbound() -> None:
    profile = parse_nft_json(fixture_text("nft/nft-j-input-drop-netns.out"))
    assert profile.enabled and profile.active
    assert profile.default_inbound_action == "drop"
    # ct state, lo, ssh, icmpv6: the four rules of the input chain (forward/output not counted)
    assert profile.rule_count == 4


def test_nft_accept_policy_with_final_reject_and_jumped_chain() -> None:
    profile = parse_nft_json(fixture_text("nft/nft-j-accept-with-reject-netns.out"))
    assert profile.enabled
    assert profile.default_inbound_action == "reject"
    assert profile.rule_count == 6  # five in input plus the one in the jumped-to blocklist


def test_nft_accept_only_ruleset_does_not_filter() -> None:
    profile = parse_nft_json(fixture_text("nft/nft-j-accept-only-netns.out"))
    assert not profile.enabled
    assert profile.active
    assert profile.default_inbound_action == "allow"
    assert profile.rule_count == 1  # the nat table's masquerade is not on the input path


def test_nft_empty_ruleset_is_not_active() -> None:
    profile = parse_nft_json(fixture_text("nft/nft-j-empty-debian12.out"))
    assert not profile.enabled and not profile.active
    assert profile.default_inbound_action == "allow"
    assert profile.rule_count == 0


def test_nft_sees_ufw_through_iptables_nft() -> None:
    profile = parse_nft_json(fixture_text("nft/nft-j-ufw-active-netns.out"))
    assert profile.enabled and profile.default_inbound_action == "drop"


def test_nft_drops_by_source_or_invalid_state_only_do_not_filter() -> None:
    # Tailscale's anti-spoofing rule (its own range dropped on other interfaces) and conntrack's
    # invalid packets, over policy accept: every port is open to everyone else.
    profile = parse_nft_json(fixture_text("nft/nft-j-tailscale-accept-netns.out"))
    assert not profile.enabled and profile.active
    assert profile.default_inbound_action == "allow"
    assert profile.rule_count == 7


def test_a_dormant_table_filters_nothing() -> None:
    # `flags dormant`: its chains see no packet, whatever their policy. nft 1.0.6 prints the
    # flag as the table's name; read as active, policy drop was a firewall on.
    profile = parse_nft_json(fixture_text("nft/nft-j-dormant-drop-netns.out"))
    assert not profile.enabled and not profile.active
    assert profile.default_inbound_action == "allow"


def test_nft_firewalld_public_zone_filters_inbound_beside_lxc_accepting_chain() -> None:
    # A real firewalld host (nft 1.0.9; public zone on eth0: ssh, dhcpv6-client, cockpit)
    # with LXC's own `inet lxc` table, published pretty-printed (the agent reads nft's one-line
    # output; any JSON layout parses the same). Two input base chains, both policy accept:
    # LXC's (priority 0) accepts DNS and DHCP from lxcbr0 and lets the rest go on to
    # firewalld's filter_INPUT (priority 10), whose zone chain accepts ssh, cockpit, DHCPv6
    # and ICMP and rejects everything else, as does filter_INPUT's last rule.
    text = fixture_text("nft/nft-j-firewalld-public-zone-lxc.json")
    assert "\n    " in text  # as published: indented, not nft's own single line
    profile = parse_nft_json(text)
    assert profile.enabled and profile.active
    assert profile.default_inbound_action == "reject"
    # LXC's input 2, filter_INPUT 6, the zones' dispatch 2, filter_IN_public 9 and its allow 3,
    # the allow-host-ipv6 policy's jump 1, its chain 5 and its allow 4; forward, output,
    # prerouting, nat and mangle chains are not on the input path.
    assert profile.rule_count == 32


@pytest.mark.parametrize("text", ["", "Error: Could not process rule", '{"nftables": [{}]}'])
def test_nft_rejects_what_is_not_a_ruleset(text: str) -> None:
    with pytest.raises(ParseError):
        parse_nft_json(text)


def test_iptables_input_drop_with_user_chain() -> None:
    profile = parse_iptables_s(fixture_text("iptables/iptables-S-input-drop-netns.out"))
    assert profile.enabled and profile.default_inbound_action == "drop"
    assert profile.rule_count == 5  # three in INPUT, two in the SSH chain it jumps to


def test_iptables_accept_policy_with_drop_and_reject_rules() -> None:
    profile = parse_iptables_s(fixture_text("iptables/iptables-S-accept-with-rules-netns.out"))
    assert profile.enabled
    assert profile.default_inbound_action == "allow"
    assert profile.rule_count == 2


def test_iptables_tailscale_anti_spoofing_is_not_a_firewall() -> None:
    # A real Ubuntu 24.04 host with ufw inactive and sshd on 0.0.0.0:22: Tailscale's
    # `-s 100.64.0.0/10 ! -i tailscale0 -j DROP` is the only drop reachable from INPUT.
    profile = parse_iptables_s(fixture_text("iptables/iptables-S-tailscale-docker-ubuntu2404.out"))
    assert not profile.enabled and profile.active
    assert profile.default_inbound_action == "allow"
    assert profile.rule_count == 6  # INPUT's jump and ts-input's five (Docker's are FORWARD's)


def test_iptables_kubernetes_loopback_hygiene_is_not_a_firewall() -> None:
    # A real kubeadm node (flannel, kube-proxy): INPUT ACCEPT, and the only drop is
    # KUBE-FIREWALL's "block incoming localnet connections" (! -s 127.0.0.0/8 -d 127.0.0.0/8).
    # Every Kubernetes node read as firewalled, every port open.
    profile = parse_iptables_s(fixture_text("iptables/iptables-S-kubernetes-flannel.out"))
    assert not profile.enabled and profile.active
    assert profile.default_inbound_action == "allow" and profile.rule_count == 5


def test_nft_kubernetes_loopback_hygiene_through_iptables_nft_is_not_a_firewall() -> None:
    # The same KUBE-FIREWALL rule loaded with iptables-nft: nft shows its comment and conntrack
    # matches as opaque `xt` statements, and the rule as drops to 127.0.0.0/8.
    profile = parse_nft_json(fixture_text("nft/nft-j-kube-firewall-iptables-nft-netns.out"))
    assert not profile.enabled and profile.active
    assert profile.default_inbound_action == "allow" and profile.rule_count == 2


@pytest.mark.parametrize(
    ("rule", "filters"),
    [
        ("-A INPUT -d 127.0.0.1/32 -p tcp --dport 9000 -j DROP", True),  # a port: filters
        ("-A INPUT ! -d 127.0.0.0/8 -j DROP", True),  # everything but loopback
        ("-A INPUT -d 192.0.2.10/32 -j DROP", True),
        ("-A INPUT ! -i lo -d ::1/128 -j REJECT", False),
        ("-A INPUT -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP", False),
    ],
)
def test_iptables_a_drop_only_for_loopback_is_hygiene(rule: str, filters: bool) -> None:
    assert parse_iptables_s(f"-P INPUT ACCEPT\n{rule}\n").enabled is filters


@pytest.mark.parametrize(
    "rule",
    [
        "-A INPUT -s 203.0.113.7/32 -j REJECT --reject-with icmp-port-unreachable",  # fail2ban
        "-A INPUT -m set --match-set blocklist src -j DROP",
        "-A INPUT -m conntrack --ctstate INVALID -j DROP",
        "-A INPUT -m comment --comment spoofed ! -i lo -s 127.0.0.0/8 -j DROP",
    ],
)
def test_iptables_source_only_drops_do_not_make_a_firewall(rule: str) -> None:
    profile = parse_iptables_s(f"-P INPUT ACCEPT\n{rule}\n")
    assert not profile.enabled and profile.active and profile.rule_count == 1


@pytest.mark.parametrize(
    "rule",
    [
        "-A INPUT -j DROP",
        "-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset",
        "-A INPUT -s 192.0.2.0/24 -p tcp --dport 22 -j DROP",
        "-A INPUT -m conntrack --ctstate NEW -j DROP",
        "-A INPUT -i eth0 -j DROP",
    ],
)
def test_iptables_drops_by_what_traffic_is_filter(rule: str) -> None:
    assert parse_iptables_s(f"-P INPUT ACCEPT\n{rule}\n").enabled


def test_iptables_empty_accepts_everything() -> None:
    profile = parse_iptables_s(fixture_text("iptables/iptables-S-empty-debian12.out"))
    assert not profile.enabled and not profile.active
    assert profile.default_inbound_action == "allow"


def test_iptables_nft_warns_of_legacy_tables_in_a_comment() -> None:
    # openSUSE Tumbleweed with firewalld on nftables and Docker on iptables-legacy: iptables-nft
    # heads its rules with a "# Warning" line (the legacy tables are read on their own).
    profile = parse_iptables_s(
        fixture_text("iptables/iptables-nft-S-legacy-warning-opensuse-tumbleweed.out")
    )
    assert not profile.enabled and not profile.active
    assert profile.default_inbound_action == "allow"


def test_iptables_ufw_chains_are_followed() -> None:
    profile = parse_iptables_s(fixture_text("iptables/iptables-S-ufw-active-netns.out"))
    assert profile.enabled and profile.default_inbound_action == "drop"
    assert profile.rule_count > 20


def test_iptables_without_output_is_a_parse_error() -> None:
    # What a non-root run leaves on stdout: nothing (the reason is on stderr).
    with pytest.raises(ParseError):
        parse_iptables_s(fixture_text("iptables/iptables-S-nonroot-debian12.out"))


def test_ufw_active_deny_incoming() -> None:
    profile = parse_ufw_status(fixture_text("ufw/ufw-status-verbose-active-netns.out"))
    assert profile.enabled and profile.active
    assert profile.default_inbound_action == "drop"
    assert profile.rule_count == 5


def test_ufw_allow_incoming_with_a_blocklist_rule_is_not_a_firewall() -> None:
    # "Anywhere DENY IN 203.0.113.7" denies one source and leaves every port open to everyone
    # else: a blocklist, as iptables and nft read the same rule (it made ufw "enabled").
    text = fixture_text("ufw/ufw-status-verbose-active-allow-incoming-netns.out")
    profile = parse_ufw_status(text)
    assert profile.default_inbound_action == "allow" and profile.active
    assert not profile.enabled and profile.rule_count == 5


@pytest.mark.parametrize(
    ("rule", "filters"),
    [
        ("23/tcp                     DENY IN     Anywhere", True),
        ("Anywhere                   DENY IN     Anywhere", True),
        ("192.0.2.10 80/tcp          REJECT IN   Anywhere", True),
        ("Anywhere on eth0           DENY IN     198.51.100.0/24", False),
        ("Anywhere (v6)              DENY IN     2001:db8::/32", False),
        ("Anywhere                   DENY FWD    Anywhere", False),
        ("Anywhere                   DENY OUT    Anywhere", False),
    ],
)
def test_ufw_rules_filter_by_what_traffic_is(rule: str, filters: bool) -> None:
    text = ("Status: active\nDefault: allow (incoming), allow (outgoing), disabled (routed)\n\n"
            "To                         Action      From\n"
            "--                         ------      ----\n" + rule + "\n")  # fmt: skip
    assert parse_ufw_status(text).enabled is filters


def test_ufw_inactive() -> None:
    profile = parse_ufw_status(fixture_text("ufw/ufw-status-verbose-inactive-debian12.out"))
    assert not profile.enabled and not profile.active


def test_ufw_non_root_output_is_not_understood() -> None:
    with pytest.raises(ParseError):
        parse_ufw_status(fixture_text("ufw/ufw-status-verbose-nonroot-debian12.out"))


@pytest.mark.parametrize(
    "name",
    [
        # Ubuntu with LANGUAGE=zh_TW (0.36.2-9build1): labels translated, "Default:" not.
        "ufw/ufw-status-verbose-zh-TW-active-ubuntu-dengkai.out",
        # Ubuntu with LANGUAGE=zh_CN: "状态：不活动" (inactive).
        "ufw/ufw-status-zh-CN-inactive-ubuntu-jack.out",
    ],
)
def test_ufw_translated_output_is_refused_as_translated(name: str) -> None:
    # ufw translates by LANGUAGE whatever LC_ALL says; its words are not guessed at.
    with pytest.raises(ParseError, match="translated"):
        parse_ufw_status(fixture_text(name))


def test_ufw_active_without_its_default_policy_is_not_read_as_open() -> None:
    # The same machine's `ufw status verbose` says "Default: deny (incoming)"; without that
    # line only ALLOW rules are left, and the machine read as having no firewall.
    with pytest.raises(ParseError, match="Default"):
        parse_ufw_status(fixture_text("ufw/ufw-status-plain-active-lctt-networkworld.out"))


def test_firewalld_without_dbus_is_not_running() -> None:
    out = fixture_text("firewalld/firewall-cmd-state-not-running-debian12.out")
    err = fixture_text("firewalld/firewall-cmd-state-not-running-debian12.err")
    assert parse_firewalld_state(out, err) is False
    profile = firewalld_profile(False)
    assert not profile.enabled and not profile.active


def test_a_stopped_firewalld_is_off_not_unknown() -> None:
    # firewall-cmd says "not running" on stderr (exit 252): read only on stdout, a stopped
    # firewalld was never "off", always unknown.
    out = fixture_text("firewalld/firewall-cmd-state-stopped-rhel.out")
    err = fixture_text("firewalld/firewall-cmd-state-stopped-rhel.err")
    assert parse_firewalld_state(out, err) is False
    with pytest.raises(ParseError):  # failsafe mode: neither running as configured nor off
        parse_firewalld_state("", "failed\n")


def test_firewalld_running() -> None:
    running = fixture_text("firewalld/firewall-cmd-state-running-debian12.out")
    assert parse_firewalld_state(running) is True
    # firewall-cmd(1), --state: "not running" (on stdout where a version printed it there).
    assert parse_firewalld_state("not running\n") is False
    with pytest.raises(ParseError):
        parse_firewalld_state("", "some other failure")


# --- accepts before the drop (fixtures README: "Accepts before a drop") ------------------


@pytest.mark.parametrize(
    ("read", "view"), [(read_iptables_s, "iptables/iptables-S-"), (read_nft_json, "nft/nft-j-")]
)
def test_ufw_chains_with_incoming_allowed_are_no_firewall(read: Reader, view: str) -> None:
    # ufw's own chains under `ufw default allow incoming` (ufw status: not a firewall) still
    # hold drops: ufw-not-local's (packets for another host), the INVALID drop, and the LIMIT
    # rule's REJECT past six connections in 30 s. None filters a new connection to this host.
    # The same rules under ufw's default deny (ufw-active) do.
    reading = read(fixture_text(f"{view}ufw-allow-incoming-netns.out"))
    assert not reading.profile.enabled and reading.profile.active
    assert reading.profile.default_inbound_action == "allow"
    assert read(fixture_text(f"{view}ufw-active-netns.out")).profile.enabled


@pytest.mark.parametrize(
    ("read", "name", "without"),
    [
        # `ufw allow from any` ("Anywhere ALLOW IN Anywhere"): ufw-user-input's `-j ACCEPT`
        # ahead of "Default: deny (incoming)", INPUT's DROP policy. Without it (ufw-active:
        # allow 22/tcp, limit 2222/tcp, deny from 203.0.113.7) ufw filters.
        (read_ufw_status, "ufw/ufw-status-verbose-allow-from-any-netns.out",
         "ufw/ufw-status-verbose-active-netns.out"),
        (read_iptables_s, "iptables/iptables-S-ufw-allow-from-any-netns.out",
         "iptables/iptables-S-ufw-active-netns.out"),
        (read_nft_json, "nft/nft-j-ufw-allow-from-any-netns.out",
         "nft/nft-j-ufw-active-netns.out"),
        # `-A INPUT -j ACCEPT` first, nft's bare `accept` first, or a jump to a chain whose
        # `counter accept` takes everything. Without it: established and related connections,
        # loopback and one port are not everything.
        (read_iptables_s, "iptables/iptables-S-accept-first-netns.out",
         "iptables/iptables-S-conditional-accepts-netns.out"),
        (read_nft_json, "nft/nft-j-iptables-accept-first-netns.out",
         "nft/nft-j-iptables-conditional-accepts-netns.out"),
        (read_nft_json, "nft/nft-j-drop-accept-first-netns.out", "nft/nft-j-input-drop-netns.out"),
        (read_nft_json, "nft/nft-j-drop-counter-accept-jump-netns.out",
         "nft/nft-j-input-drop-netns.out"),
    ],
)  # fmt: skip
def test_an_accept_of_everything_before_the_drop_is_no_firewall(
    read: Reader, name: str, without: str
) -> None:
    reading = read(fixture_text(name))
    assert not reading.profile.enabled and reading.profile.active
    assert reading.profile.default_inbound_action == "allow"
    assert not reading.filters("wlp2s0") and not reading.filters("enp0s31f6")
    # Without it the drop takes the rest, on the Wi-Fi as on the wired card.
    guarded = read(fixture_text(without))
    assert guarded.profile.enabled and guarded.profile.default_inbound_action == "drop"
    assert guarded.filters("wlp2s0") and guarded.filters("enp0s31f6")


@pytest.mark.parametrize(
    ("read", "name"),
    [
        (read_ufw_status, "ufw/ufw-status-verbose-allow-in-on-wifi-netns.out"),
        (read_iptables_s, "iptables/iptables-S-ufw-allow-in-on-wifi-netns.out"),
        (read_nft_json, "nft/nft-j-ufw-allow-in-on-wifi-netns.out"),
        (read_iptables_s, "iptables/iptables-S-wifi-accept-netns.out"),
        (read_nft_json, "nft/nft-j-iptables-wifi-accept-netns.out"),
        (read_nft_json, "nft/nft-j-drop-wifi-accept-netns.out"),
    ],
)
def test_everything_accepted_on_the_wifi_alone(read: Reader, name: str) -> None:
    # `ufw allow in on wlp2s0`, `-A INPUT -i wlp2s0 -j ACCEPT`, `iifname "wlp2s0" accept`:
    # the other interfaces are filtered, the Wi-Fi not at all.
    reading = read(fixture_text(name))
    assert reading.profile.enabled and reading.profile.default_inbound_action == "drop"
    assert not reading.filters("wlp2s0")
    assert reading.filters("enp0s31f6") and reading.filters("wlp3s0")


def test_nft_verdict_maps_and_fib_are_read_by_what_a_new_connection_is() -> None:
    # `ct state vmap { invalid : drop, established : accept, related : accept }` over policy
    # accept drops no new connection (nor does `fib daddr type != { local, ... } drop`: a new
    # connection to this host is for a local address): no firewall. With policy drop and
    # `iifname vmap { "lo" : accept, "wlp2s0" : accept }`, the Wi-Fi alone is let in.
    accepting = read_nft_json(fixture_text("nft/nft-j-accept-vmap-fib-netns.out"))
    assert not accepting.profile.enabled and accepting.profile.active
    assert accepting.profile.default_inbound_action == "allow"
    dropping = read_nft_json(fixture_text("nft/nft-j-drop-iifname-vmap-netns.out"))
    assert dropping.profile.enabled and dropping.profile.default_inbound_action == "drop"
    assert not dropping.filters("wlp2s0") and dropping.filters("enp0s31f6")


def test_tailscale_ahead_of_ufw_lets_in_what_arrives_on_tailscale0() -> None:
    # tailscaled's ts-input, jumped to before ufw's chains: `-i tailscale0 -j ACCEPT`, and a
    # conditional RETURN and a source-only DROP for other interfaces; ufw filters the rest.
    # (Recorded for IPv4 only, which is what iptables -S shows; nft shows ufw's IPv6 chains
    # too, which filter tailscale0, and a filter in any family counts, as before.)
    reading = read_iptables_s(fixture_text("iptables/iptables-S-ufw-tailscale-netns.out"))
    assert reading.profile.enabled and reading.profile.default_inbound_action == "drop"
    assert not reading.filters("tailscale0")
    assert reading.filters("wlp2s0") and reading.filters("enp0s31f6")
    # ufw's status does not show ts-input: by it, tailscale0 is filtered too.
    assert read_ufw_status(fixture_text("ufw/ufw-status-verbose-tailscale-netns.out")).filters(
        "tailscale0"
    )


@pytest.mark.parametrize(
    ("open_rules", "filtering_rules"),
    [
        ("-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n-A INPUT -p tcp --dport 23 -j DROP",
         "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 23 -j DROP\n-A INPUT -j ACCEPT"),
        ("-P INPUT DROP\n-A INPUT -m comment --comment everyone -j ACCEPT",
         "-P INPUT DROP\n-A INPUT -p tcp -m comment --comment ssh --dport 22 -j ACCEPT"),
        ("-P INPUT DROP\n-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
         "-P INPUT DROP\n-A INPUT -m state --state ESTABLISHED -j ACCEPT"),
        ("-P INPUT DROP\n-A INPUT ! -i lo -j ACCEPT", "-P INPUT DROP\n-A INPUT -i lo -j ACCEPT"),
        ("-P INPUT DROP\n-N ALL\n-A INPUT -j ALL\n-A ALL -j ACCEPT",
         "-P INPUT DROP\n-N ALL\n-A INPUT -p tcp -j ALL\n-A ALL -j ACCEPT"),
        # A jump's chain returns to INPUT; a goto's returns past it, to the DROP policy.
        ("-P INPUT DROP\n-N ALL\n-A INPUT -j ALL\n-A INPUT -j ACCEPT\n-A ALL -j RETURN",
         "-P INPUT DROP\n-N ALL\n-A INPUT -g ALL\n-A INPUT -j ACCEPT\n-A ALL -j RETURN"),
        # A reject past a rate (ufw's LIMIT) lets connections in at every normal rate.
        ("-P INPUT ACCEPT\n-A INPUT -p tcp -m recent --update --hitcount 6 -j REJECT",
         "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 23 -j REJECT"),
        ("-P INPUT ACCEPT\n-A INPUT -m limit --limit 3/min -j DROP",
         "-P INPUT ACCEPT\n-A INPUT -p icmp -j DROP"),
    ],
)  # fmt: skip
def test_iptables_rules_are_read_in_order(open_rules: str, filtering_rules: str) -> None:
    assert not parse_iptables_s(open_rules + "\n").enabled
    assert parse_iptables_s(filtering_rules + "\n").enabled


def _ufw(default: str, rules: list[str]) -> str:
    return (f"Status: active\nDefault: {default} (incoming), allow (outgoing), disabled (routed)"
            "\n\nTo                         Action      From\n"
            "--                         ------      ----\n" + "\n".join(rules) + "\n")  # fmt: skip


@pytest.mark.parametrize(
    ("default", "open_rules", "filtering_rules"),
    [
        ("allow", ["Anywhere                   ALLOW IN    Anywhere",
                   "23/tcp                     DENY IN     Anywhere"],
                  ["23/tcp                     DENY IN     Anywhere",
                   "Anywhere                   ALLOW IN    Anywhere"]),
        ("deny", ["Anywhere                   ALLOW IN    Anywhere",
                  "Anywhere (v6)              ALLOW IN    Anywhere (v6)"],
                 ["Anywhere                   ALLOW IN    192.0.2.0/24",
                  "Anywhere (v6)              ALLOW IN    2001:db8::/32"]),
        # IPv4 and IPv6 rules are separate chains: IPv6 left to the default deny filters.
        ("deny", ["Anywhere                   ALLOW IN    Anywhere",
                  "Anywhere (v6)              ALLOW IN    Anywhere (v6)"],
                 ["Anywhere                   ALLOW IN    Anywhere"]),
    ],
)  # fmt: skip
def test_ufw_rules_are_read_in_order(
    default: str, open_rules: list[str], filtering_rules: list[str]
) -> None:
    assert not parse_ufw_status(_ufw(default, open_rules)).enabled
    assert parse_ufw_status(_ufw(default, filtering_rules)).enabled


# --- IPv4 and IPv6 apart (fixtures README: "IPv4 and IPv6") -------------------------------


@pytest.mark.parametrize(
    ("scenario", "v4", "v6"),
    [("ufw-ipv4-open", False, True), ("ufw-ipv6-open", True, False), ("ufw-both", True, True)],
)
def test_each_family_is_walked_on_its_own(scenario: str, v4: bool, v6: bool) -> None:
    # ufw's default deny, then `iptables -I INPUT 1 -j ACCEPT` (ipv4-open) or the same with
    # ip6tables (ipv6-open): nft shows ufw's `ip` and `ip6` tables, each family's walk meets
    # only its own. A filter in either family no longer speaks for the other.
    nft = read_nft_json(fixture_text(f"nft/nft-j-{scenario}-netns.out"))
    assert (nft.filters_anywhere(IPV4), nft.filters_anywhere(IPV6)) == (v4, v6)
    assert (nft.filters("wlp2s0", IPV4), nft.filters("wlp2s0", IPV6)) == (v4, v6)
    assert nft.profile.enabled  # the parser's profile: a filter in either family, as before
    judged = nft.profile_for(frozenset({IPV4, IPV6}))
    assert judged.enabled == (v4 and v6)
    assert judged.default_inbound_action == ("drop" if v4 and v6 else "allow")
    assert nft.profile_for(frozenset({IPV4})).enabled == v4
    # iptables -S shows IPv4 alone, ip6tables -S IPv6 alone: each speaks for its family.
    ipt = read_iptables_s(fixture_text(f"iptables/iptables-S-{scenario}-netns.out"))
    ip6 = read_iptables_s(fixture_text(f"iptables/ip6tables-S-{scenario}-netns.out"),
                          "ip6tables", "ip6tables", IPV6)  # fmt: skip
    assert (ipt.families, ip6.families) == (frozenset({IPV4}), frozenset({IPV6}))
    assert (ipt.filters_anywhere(IPV4), ip6.filters_anywhere(IPV6)) == (v4, v6)
    assert (ipt.profile.enabled, ip6.profile.enabled) == (v4, v6)
    # ufw's status shows neither ACCEPT: both its families filter.
    ufw = read_ufw_status(fixture_text(f"ufw/ufw-status-verbose-{scenario[4:]}-netns.out"))
    assert ufw.filters_anywhere(IPV4) and ufw.filters_anywhere(IPV6)
