"""Linux probes on a replaying host built from real recorded outputs."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest

from devposture.agent.host import Host, NetInterface, ProcessInfo
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import antivirus, disk, firewall, updates, vpn, wifi
from devposture.agent.probes.outcome import FactOutcome, Probe, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.checks import State, evaluate
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_bytes, fixture_text, ok, recorded

NFT = ("nft", "-j", "list", "ruleset")
IPT = ("iptables", "-S")


def run(
    probe_fn: Probe,
    fact: pb.Fact.ValueType,
    host: Host,
    config: ProbeConfig | None = None,
    report: pb.PostureReport | None = None,
) -> FactOutcome:
    ctx = ProbeContext(host, config or ProbeConfig(), report or pb.PostureReport())
    return run_probe(fact, probe_fn, ctx)


# --- firewall --------------------------------------------------------------------------


def test_nft_drop_policy_means_enabled() -> None:
    host = ReplayHost().with_tool("nft")
    host.commands[NFT] = recorded("nft/nft-j-input-drop-netns")
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact)
    assert fact.HasField("enabled") and fact.enabled
    assert [(p.name, p.default_inbound_action) for p in fact.profiles] == [("nftables", "drop")]
    assert outcome.errors == []


def test_no_firewall_tool_is_command_not_found_and_no_fact() -> None:
    outcome = run(firewall.probe, pb.FACT_FIREWALL, ReplayHost())
    assert outcome.fact is None
    assert [(e.fact, e.code) for e in outcome.errors] == [
        (pb.FACT_FIREWALL, pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)
    ]


def test_not_root_is_permission_denied_per_source() -> None:
    host = ReplayHost().with_tool("nft").with_tool("iptables")
    host.commands[NFT] = recorded("nft/nft-j-nonroot-debian12")
    host.commands[IPT] = recorded("iptables/iptables-S-nonroot-debian12")
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert outcome.fact is None
    assert {(e.source, e.code) for e in outcome.errors} == {
        ("nft", pb.PROBE_ERROR_CODE_PERMISSION_DENIED),
        ("iptables", pb.PROBE_ERROR_CODE_PERMISSION_DENIED),
    }


def test_one_unreadable_backend_leaves_enabled_unknown() -> None:
    host = ReplayHost().with_tool("nft").with_tool("ufw")
    host.commands[NFT] = recorded("nft/nft-j-accept-only-netns")
    host.commands[("ufw", "status", "verbose")] = recorded(
        "ufw/ufw-status-verbose-nonroot-debian12"
    )
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact)
    assert not outcome.fact.HasField("enabled")  # nft accepts, ufw could not be read
    assert [e.source for e in outcome.errors] == ["ufw"]


def test_everything_read_and_nothing_filters_is_disabled() -> None:
    host = ReplayHost().with_tool("nft").with_tool("ufw").with_tool("firewall-cmd")
    host.commands[NFT] = recorded("nft/nft-j-empty-debian12")
    host.commands[("ufw", "status", "verbose")] = recorded(
        "ufw/ufw-status-verbose-inactive-debian12"
    )
    host.commands[("firewall-cmd", "--state")] = recorded(
        "firewalld/firewall-cmd-state-not-running-debian12"
    )
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact)
    assert outcome.fact.HasField("enabled") and not outcome.fact.enabled
    assert len(outcome.fact.profiles) == 3


_FIREWALLD = "firewalld/firewall-cmd-"


def _firewalld_host(nft: str, default_zone: str, zones: str) -> ReplayHost:
    """nftables and firewalld as recorded on one firewalld 1.3.3 machine (fixtures README)."""
    host = ReplayHost().with_tool("nft").with_tool("firewall-cmd")
    host.commands[NFT] = recorded(f"nft/nft-j-firewalld-{nft}-netns")
    host.commands[cmd.FIREWALLD_STATE] = recorded(f"{_FIREWALLD}state-running-debian12")
    host.commands[cmd.FIREWALLD_DEFAULT_ZONE] = recorded(
        f"{_FIREWALLD}get-default-zone-{default_zone}-debian12"
    )
    host.commands[cmd.FIREWALLD_ZONES] = recorded(f"{_FIREWALLD}list-all-zones-{zones}")
    return host


def _judged(fact: pb.FirewallFact) -> tuple[State, str]:
    report = pb.PostureReport()
    report.host.os_family = pb.OS_FAMILY_LINUX
    report.firewall.CopyFrom(fact)
    (result,) = [v for c, v in evaluate(report, dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
                 if c.check_id == "firewall"]  # fmt: skip
    return result.state, render(result.reason, "en", dt.UTC)


def test_a_wifi_in_firewallds_trusted_zone_fails_though_nft_reads_a_filter() -> None:
    """nft reads firewalld's table as filtering (its last rule rejects), and the default zone
    is public: before, the fact said enabled and the check PASS. Packets on the Wi-Fi go
    through the trusted zone's chain, which accepts them."""
    outcome = run(firewall.probe, pb.FACT_FIREWALL,
                  _firewalld_host("wifi-trusted", "public", "wifi-trusted-debian12"))  # fmt: skip
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    nft, firewalld = fact.profiles
    assert (nft.name, nft.enabled, nft.default_inbound_action) == ("nftables", True, "reject")
    assert firewalld.active and not firewalld.enabled
    assert [(z.name, z.default_inbound_action, list(z.interfaces)) for z in firewalld.zones] == [
        ("trusted", "allow", ["wlp2s0"]), ("public", "reject", ["enp0s31f6"])
    ]  # fmt: skip
    assert fact.HasField("enabled") and not fact.enabled
    assert _judged(fact) == (
        State.FAIL, "firewalld zone trusted accepts all inbound traffic on wlp2s0"
    )  # fmt: skip


def test_a_laptop_whose_networks_sit_in_rejecting_zones_passes() -> None:
    outcome = run(firewall.probe, pb.FACT_FIREWALL,
                  _firewalld_host("laptop", "public", "laptop-debian12"))  # fmt: skip
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    assert fact.enabled and all(p.enabled for p in fact.profiles)
    assert _judged(fact)[0] is State.PASS


def test_firewalld_stopped_before_its_zones_were_read_is_unknown() -> None:
    host = _firewalld_host("laptop", "public", "stopped-debian12")
    del host.tools["nft"]
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert outcome.fact is None
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("firewall-cmd", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    ]
    assert host.calls[-1] == cmd.FIREWALLD_ZONES


def _computer(
    host: ReplayHost, cards: tuple[str, ...], virtual: tuple[str, ...] = ()
) -> ReplayHost:
    """This computer's interfaces as /sys/class/net lists them: a card has a `device` entry,
    a bridge, veth or tunnel none."""
    host.dirs["/sys/class/net"] = sorted(("lo", *cards, *virtual))
    for card in cards:
        host.dirs[f"/sys/class/net/{card}/device"] = []
    return host


def _ufw_host(nft: str, iptables: str, ufw: str) -> ReplayHost:
    """nft, iptables (nf_tables) and ufw as recorded together in one namespace (fixtures
    README, "Accepts before a drop")."""
    host = ReplayHost().with_tool("nft").with_tool("iptables").with_tool("ufw")
    host.commands[NFT] = recorded(f"nft/{nft}")
    host.commands[IPT] = recorded(f"iptables/{iptables}")
    host.commands[cmd.IPTABLES_VERSION] = recorded("iptables/iptables-V-debian12")
    host.commands[cmd.UFW_STATUS] = recorded(f"ufw/{ufw}")
    return host


@pytest.mark.parametrize(
    ("nft", "iptables", "ufw"),
    [
        ("nft-j-ufw-allow-from-any-netns", "iptables-S-ufw-allow-from-any-netns",
         "ufw-status-verbose-allow-from-any-netns"),
        ("nft-j-ufw-allow-incoming-netns", "iptables-S-ufw-allow-incoming-netns",
         "ufw-status-verbose-active-allow-incoming-netns"),
    ],
)  # fmt: skip
def test_ufw_letting_everything_in_fails_in_every_view(nft: str, iptables: str, ufw: str) -> None:
    """`ufw allow from any`, `ufw default allow incoming`: ufw's status, and its chains as
    iptables and nft show them, all read as letting everything in. Before, nft and iptables
    read ufw's remaining drops (ufw-not-local's, the DROP policy) as a firewall: PASS."""
    host = _computer(_ufw_host(nft, iptables, ufw), ("enp0s31f6", "wlp2s0"))
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    assert [(p.name, p.enabled, p.active) for p in fact.profiles] == [
        ("nftables", False, True), ("iptables", False, True), ("ufw", False, True)
    ]  # fmt: skip
    assert fact.HasField("enabled") and not fact.enabled
    assert _judged(fact) == (
        State.FAIL, "no firewall filters inbound traffic (nftables, iptables, ufw)"
    )  # fmt: skip


def test_a_laptop_whose_wifi_is_let_in_fails_naming_its_card() -> None:
    """`ufw allow in on wlp2s0`: every backend filters the wired card and lets everything in
    on the Wi-Fi. On a laptop whose Wi-Fi card that is, the firewall is open on every network
    the Wi-Fi joins; before, it read as on."""
    host = _ufw_host("nft-j-ufw-allow-in-on-wifi-netns", "iptables-S-ufw-allow-in-on-wifi-netns",
                     "ufw-status-verbose-allow-in-on-wifi-netns")  # fmt: skip
    outcome = run(firewall.probe, pb.FACT_FIREWALL,
                  _computer(host, ("enp0s31f6", "wlp2s0"), ("docker0", "tailscale0")))  # fmt: skip
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    # nft's reading leaves out ufw's tables, which iptables -S read whole (iptables-nft's).
    assert [(p.name, p.enabled) for p in fact.profiles] == [
        ("nftables", False), ("iptables", True), ("ufw", True), ("wlp2s0", False)
    ]  # fmt: skip
    card = fact.profiles[-1]
    assert (card.active, card.default_inbound_action, card.source) == (
        True, "allow", "nft,iptables"  # nft: ufw's ip6 tables (IPv6 is not in use here)
    )  # fmt: skip
    assert fact.HasField("enabled") and not fact.enabled
    # Named as the open card, not listed among the tools as if none of them filtered.
    assert _judged(fact) == (
        State.FAIL, "all inbound traffic is accepted on network card(s) wlp2s0"
    )  # fmt: skip
    # The same rules on a computer without that card (a desktop on its wired card), or where
    # wlp2s0 is no card (the namespace they were recorded in, where it is a veth): nothing open.
    for cards, virtual in ((("enp0s31f6",), ()), ((), ("enp0s31f6", "wlp2s0"))):
        host.dirs.clear()
        outcome = run(firewall.probe, pb.FACT_FIREWALL, _computer(host, cards, virtual))
        assert isinstance(outcome.fact, pb.FirewallFact) and outcome.fact.enabled
        assert len(outcome.fact.profiles) == 3 and _judged(outcome.fact)[0] is State.PASS


def test_rules_ahead_of_ufws_chains_decide_not_ufws_status() -> None:
    """ufw's status shows ufw's own rules alone. An ACCEPT inserted in INPUT ahead of ufw's
    chains lets everything in though ufw says "Default: deny" (before, that made the fact true:
    PASS). Tailscale's ts-input, ahead of them too, lets in all that arrives on tailscale0, a
    tunnel and no card: the laptop's cards are still filtered."""
    host = _ufw_host("nft-j-ufw-bypassed-netns", "iptables-S-ufw-bypassed-netns",
                     "ufw-status-verbose-bypassed-netns")  # fmt: skip
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _computer(host, ("enp0s31f6", "wlp2s0")))
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    assert [(p.name, p.enabled) for p in fact.profiles] == [
        ("nftables", False), ("iptables", False), ("ufw", True)
    ]  # fmt: skip
    assert fact.HasField("enabled") and not fact.enabled
    assert _judged(fact)[0] is State.FAIL
    host = _ufw_host("nft-j-ufw-tailscale-netns", "iptables-S-ufw-tailscale-netns",
                     "ufw-status-verbose-tailscale-netns")  # fmt: skip
    _computer(host, ("enp0s31f6", "wlp2s0"), ("tailscale0",))
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact) and outcome.fact.enabled
    assert [p.name for p in outcome.fact.profiles] == ["nftables", "iptables", "ufw"]
    assert _judged(outcome.fact)[0] is State.PASS


def test_an_open_card_beside_a_backend_unread_is_unknown() -> None:
    """nft lets everything in on the Wi-Fi (`iifname "wlp2s0" accept`) and ufw could not be
    read: ufw's rules might filter that card, so the agent cannot tell. Before: PASS."""
    host = ReplayHost().with_tool("nft").with_tool("ufw")
    host.commands[NFT] = recorded("nft/nft-j-drop-wifi-accept-netns")
    host.commands[cmd.UFW_STATUS] = recorded("ufw/ufw-status-verbose-nonroot-debian12")
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _computer(host, ("wlp2s0",)))
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and not fact.HasField("enabled")
    assert [p.name for p in fact.profiles] == ["nftables", "wlp2s0"]
    assert [e.source for e in outcome.errors] == ["ufw"]
    assert _judged(fact)[0] is State.UNKNOWN


def _ipv6(host: ReplayHost, state: str) -> ReplayHost:
    """IPv6 as the kernel showed it in a namespace (fixtures README, "IPv4 and IPv6"): its
    addresses (/proc/net/if_inet6) and each interface's disable_ipv6, recorded as `grep -H`
    printed them."""
    host.files["/proc/net/if_inet6"] = fixture_bytes(f"ipv6/if-inet6-{state}-netns.out")
    for line in fixture_text(f"ipv6/disable-ipv6-{state}-netns.out").splitlines():
        path, value = line.rsplit(":", 1)
        host.files[path] = f"{value}\n".encode()
        host.dirs.setdefault("/proc/sys/net/ipv6/conf", []).append(path.split("/")[-2])
    return host


def _family_host(scenario: str, ipv6: str = "on") -> ReplayHost:
    """nft, iptables, ip6tables and ufw as recorded together in one namespace, on a laptop."""
    host = ReplayHost().with_tool("nft").with_tool("iptables").with_tool("ip6tables")
    host.commands[NFT] = recorded(f"nft/nft-j-{scenario}-netns")
    host.commands[IPT] = recorded(f"iptables/iptables-S-{scenario}-netns")
    host.commands[cmd.IP6TABLES_RULES] = recorded(f"iptables/ip6tables-S-{scenario}-netns")
    host.commands[cmd.IPTABLES_VERSION] = recorded("iptables/iptables-V-debian12")
    host.commands[cmd.IP6TABLES_VERSION] = recorded("iptables/ip6tables-V-legacy6-netns")
    if scenario.startswith("ufw-"):
        host.with_tool("ufw")
        host.commands[cmd.UFW_STATUS] = recorded(f"ufw/ufw-status-verbose-{scenario[4:]}-netns")
    return _computer(_ipv6(host, ipv6), ("enp0s31f6", "wlp2s0"))


@pytest.mark.parametrize(("scenario", "family"), [("ufw-ipv4-open", "IPv4"),
                                                  ("ufw-ipv6-open", "IPv6")])  # fmt: skip
def test_a_family_left_open_fails_though_the_other_is_filtered(scenario: str, family: str) -> None:
    """ufw's default deny with an `iptables -I INPUT 1 -j ACCEPT` ahead of its IPv4 chains
    (its IPv6 chains intact), and the reverse. Before, a filter in either family counted:
    nft read ufw's other family as on, and so did iptables (or ip6tables was never read): PASS
    with every IPv4 (or IPv6) port open."""
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _family_host(scenario))
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    v4_open = family == "IPv4"
    assert [(p.name, p.enabled) for p in fact.profiles] == [
        ("nftables", False), ("iptables", not v4_open), ("ip6tables", v4_open), ("ufw", True),
        (family, False),
    ]  # fmt: skip
    assert (fact.profiles[-1].default_inbound_action, fact.profiles[-1].source) == (
        "allow", "ip6tables" if v4_open else "iptables"
    )  # fmt: skip
    assert fact.HasField("enabled") and not fact.enabled
    assert _judged(fact) == (State.FAIL, f"all inbound {family} traffic is accepted")
    # Both families filtered (ufw as it sets itself up): on.
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _family_host("ufw-both"))
    assert isinstance(outcome.fact, pb.FirewallFact) and outcome.fact.enabled
    assert [p.name for p in outcome.fact.profiles] == ["nftables", "iptables", "ip6tables", "ufw"]
    assert _judged(outcome.fact)[0] is State.PASS


def test_ipv6_switched_off_needs_only_ipv4_filtered() -> None:
    """iptables filters IPv4 alone, nothing filters IPv6. With IPv6 off in the kernel (`all`,
    and so `default` and every card, at 1; or no /proc/net/if_inet6) that is a firewall; a
    card that appeared later takes `default` and changes nothing; one card switched back on
    puts IPv6 in use, all of it open. Before, that last read as on: PASS."""
    for ipv6 in ("all-off", "all-off-new-card"):
        host = _family_host("ipv6-off", ipv6)
        outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
        assert isinstance(outcome.fact, pb.FirewallFact) and outcome.fact.enabled
        assert cmd.IP6TABLES_RULES not in host.calls  # IPv6 not in use: not asked
        # iptables-nft's `ip filter` judged from iptables -S alone, left out of nft's reading.
        assert [(p.name, p.enabled) for p in outcome.fact.profiles] == [
            ("nftables", False), ("iptables", True)
        ]  # fmt: skip
    host = _family_host("ipv6-off", "all-off")
    del host.files["/proc/net/if_inet6"]  # a kernel without IPv6 (ipv6.disable=1)
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact) and outcome.fact.enabled
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _family_host("ipv6-off", "all-off-wifi-on"))
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    assert [(p.name, p.enabled) for p in fact.profiles] == [
        ("nftables", False), ("iptables", True), ("ip6tables", False), ("IPv6", False)
    ]  # fmt: skip
    assert not fact.enabled and _judged(fact) == (
        State.FAIL, "all inbound IPv6 traffic is accepted"
    )  # fmt: skip


def test_ip6tables_missing_leaves_the_ipv6_side_unknown() -> None:
    """iptables read, ip6tables not installed, no nft: the IPv6 side cannot be told, and IPv4
    filtered alone is no PASS (before: PASS). IPv4 left open is a FAIL all the same."""
    host = _family_host("ufw-ipv6-open")
    for tool in ("nft", "ip6tables"):
        del host.tools[tool]
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and not fact.HasField("enabled")
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("ip6tables", pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND)
    ]  # fmt: skip
    assert _judged(fact)[0] is State.UNKNOWN
    host = _family_host("ufw-ipv4-open")
    for tool in ("nft", "ip6tables"):
        del host.tools[tool]
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact) and not outcome.fact.enabled
    assert _judged(outcome.fact)[0] is State.FAIL


def _legacy6_host() -> ReplayHost:
    """IPv4 filtered in iptables-nft, IPv6 in ip6tables-legacy alone, as recorded in one
    namespace (fixtures README, "Legacy ip6tables and iptables-nft's matches")."""
    host = _family_host("legacy6").with_tool("iptables-legacy").with_tool("ip6tables-legacy")
    host.commands[cmd.IPTABLES_LEGACY_RULES] = recorded("iptables/iptables-legacy-S-legacy6-netns")
    host.commands[cmd.IP6TABLES_LEGACY_RULES] = recorded(
        "iptables/ip6tables-legacy-S-legacy6-netns"
    )
    for family, name in (("ip", "ip-tables-names"), ("ip6", "ip6-tables-names")):
        host.files[f"/proc/net/{family}_tables_names"] = fixture_bytes(
            f"iptables/{name}-legacy6-netns.out"
        )
    return host


def test_ipv6_filtered_in_legacy_tables_alone_is_read() -> None:
    """ip6tables is the nf_tables variant, its nf_tables side empty (it warns "ip6tables-legacy
    tables present"), and IPv6 is filtered in the legacy tables: every IPv6 packet meets them.
    Before, they were never read: FAIL, "all inbound IPv6 traffic is accepted"."""
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _legacy6_host())
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    assert [(p.name, p.enabled, p.active) for p in fact.profiles] == [
        ("nftables", False, False), ("iptables", True, True),
        ("iptables-legacy", False, False), ("ip6tables", False, False),
        ("ip6tables-legacy", True, True),
    ]  # fmt: skip
    assert fact.enabled and _judged(fact)[0] is State.PASS
    # Without the legacy tool, or with no legacy filter table in use (a names file without
    # `filter`: listing it would make one), the legacy tables are not asked: IPv6 open.
    for tool, names in (("ip6tables-legacy", b"filter\n"), ("", b"nat\n")):
        host = _legacy6_host()
        host.tools.pop(tool, None)
        host.files["/proc/net/ip6_tables_names"] = names
        outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
        assert cmd.IP6TABLES_LEGACY_RULES not in host.calls
        assert isinstance(outcome.fact, pb.FirewallFact) and not outcome.fact.enabled
        assert _judged(outcome.fact) == (State.FAIL, "all inbound IPv6 traffic is accepted")


def test_iptables_nft_tables_are_judged_from_iptables_not_from_nfts_opaque_matches() -> None:
    """`-P INPUT DROP` and `-m conntrack --ctstate NEW -j ACCEPT` (iptables-nft, both families):
    every new connection is let in. nft shows the match only as `xt conntrack` and read the
    accept as taking some, the drop policy as a filter: before, PASS with every port open.
    Those tables are now judged from iptables -S and ip6tables -S alone, counted once."""
    # Then SSH alone let in, by addrtype and state (opaque to nft too): still a firewall.
    for scenario, on, rules, judged in (
        ("xt-new-accept", False, 2, (State.FAIL, "no firewall filters inbound traffic"
                                                 " (nftables, iptables, ip6tables)")),
        ("xt-ssh-only", True, 3, (State.PASS, "filtering inbound traffic: iptables, ip6tables")),
    ):  # fmt: skip
        outcome = run(firewall.probe, pb.FACT_FIREWALL, _family_host(scenario))
        fact = outcome.fact
        assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
        assert [(p.name, p.enabled, p.rule_count) for p in fact.profiles] == [
            ("nftables", False, 0), ("iptables", on, rules), ("ip6tables", on, rules)
        ]  # fmt: skip
        assert fact.HasField("enabled") and fact.enabled is on
        assert _judged(fact) == judged


def test_iptables_nft_tables_stay_in_nfts_reading_when_iptables_did_not_read_them() -> None:
    """iptables on the legacy backend (`iptables -V` says legacy) reads the legacy tables, not
    iptables-nft's: nft's reading keeps iptables-nft's `ip filter` (its three rules, IPv4
    filtered), as it does when `iptables -S` could not be read."""
    host = _legacy6_host()
    host.commands[cmd.IPTABLES_VERSION] = ok("iptables v1.8.9 (legacy)\n")
    outcome = run(firewall.probe, pb.FACT_FIREWALL, host)
    assert isinstance(outcome.fact, pb.FirewallFact) and outcome.fact.enabled
    nft = outcome.fact.profiles[0]
    assert (nft.name, nft.rule_count, nft.active) == ("nftables", 3, True)
    assert cmd.IPTABLES_LEGACY_RULES not in host.calls
    failed = _legacy6_host()
    failed.commands[IPT] = recorded("iptables/iptables-S-nonroot-debian12")
    outcome = run(firewall.probe, pb.FACT_FIREWALL, failed)
    assert isinstance(outcome.fact, pb.FirewallFact)
    assert [e.source for e in outcome.errors] == ["iptables"]
    nft = outcome.fact.profiles[0]
    assert (nft.name, nft.rule_count, nft.active) == ("nftables", 3, True)


def test_a_card_open_in_one_family_is_named_with_it() -> None:
    """The Wi-Fi let in for IPv6 alone (`ip6tables -I INPUT 1 -i wlp2s0 -j ACCEPT`), IPv4
    filtered on it: named with its family. Before, "wlp2s0" alone, as if IPv4 were open too."""
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _family_host("wifi-ipv6-open"))
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and outcome.errors == []
    assert [(p.name, p.enabled) for p in fact.profiles] == [
        ("nftables", False), ("iptables", True), ("ip6tables", True), ("wlp2s0 (IPv6)", False)
    ]  # fmt: skip
    assert fact.profiles[-1].source == "iptables,ip6tables"
    assert fact.HasField("enabled") and not fact.enabled
    assert _judged(fact) == (
        State.FAIL, "all inbound IPv6 traffic is accepted on network card(s) wlp2s0"
    )  # fmt: skip
    # Open in both families (`-i enp+` in iptables and ip6tables): named alone.
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _family_host("wired-open"))
    assert isinstance(outcome.fact, pb.FirewallFact) and not outcome.fact.enabled
    assert [p.name for p in outcome.fact.profiles][3:] == ["enp0s31f6"]
    assert _judged(outcome.fact) == (
        State.FAIL, "all inbound traffic is accepted on network card(s) enp0s31f6"
    )  # fmt: skip


def test_open_cards_past_the_collectors_limit_are_counted_not_sent() -> None:
    """A server with 100 wired cards (SR-IOV functions) and every `enp+` card let in: before,
    100 card profiles, and the collector refused the whole report."""
    host = _family_host("wired-open")
    host.dirs.clear()
    cards = tuple(f"enp{n // 10 + 1}s0f{n % 10}" for n in range(100))
    outcome = run(firewall.probe, pb.FACT_FIREWALL, _computer(_ipv6(host, "on"), cards))
    fact = outcome.fact
    assert isinstance(fact, pb.FirewallFact) and not fact.enabled
    assert len(fact.profiles) == firewall.MAX_PROFILES
    names = [p.name for p in fact.profiles]
    assert names[:3] == ["nftables", "iptables", "ip6tables"]
    assert names[3:] == sorted(cards)[: firewall.MAX_PROFILES - 3]
    assert [(e.source, e.message) for e in outcome.errors] == [(
        "cards", "39 of 100 open network cards left out of the report (the collector takes 64"
        " firewall profiles): the firewall tools and the IP families are kept first",
    )]  # fmt: skip
    assert _judged(fact)[0] is State.FAIL


def test_ipv6_counts_as_in_use_unless_off_everywhere() -> None:
    host = ReplayHost()
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    assert firewall.families_in_use(ctx) == {"IPv4"}  # no /proc/net/if_inet6
    for state, families in (("on", {"IPv4", "IPv6"}), ("all-off", {"IPv4"}),
                            ("all-off-new-card", {"IPv4"}),
                            ("all-off-wifi-on", {"IPv4", "IPv6"})):  # fmt: skip
        host = _ipv6(ReplayHost(), state)
        ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
        assert firewall.families_in_use(ctx) == families, state
    host = _ipv6(ReplayHost(), "all-off")
    del host.dirs["/proc/sys/net/ipv6/conf"]  # the sysctls unreadable: counted as in use
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    assert firewall.families_in_use(ctx) == {"IPv4", "IPv6"}


# --- antivirus -------------------------------------------------------------------------


def _clamav_host(*db_files: str) -> ReplayHost:
    host = ReplayHost().with_tool("clamscan").with_tool("freshclam")
    host.dirs["/var/lib/clamav"] = list(db_files)
    return host


def test_clamav_with_database_and_clamd_running() -> None:
    host = _clamav_host("daily.cud", "freshclam.dat")
    host.files["/var/lib/clamav/daily.cud"] = fixture_bytes(
        "clamav/daily-27001-sigtool-unsigned.cud"
    )
    host.procs = [ProcessInfo(1, "systemd"), ProcessInfo(812, "clamd", "clamd")]
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    (clam,) = outcome.fact.products
    assert clam.name == "ClamAV" and clam.signature_version == "27001"
    assert clam.signatures_updated_at.seconds == 1795510624
    assert clam.enabled and not clam.real_time_protection  # no clamonacc: no on-access scan
    assert list(clam.processes) == ["clamd"]


def test_clamav_without_database_is_not_healthy() -> None:
    host = _clamav_host()
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    (clam,) = outcome.fact.products
    assert clam.HasField("signatures_up_to_date") and not clam.signatures_up_to_date
    assert not clam.signature_version
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("clamav-db", pb.PROBE_ERROR_CODE_NO_SOURCE)
    ]


def test_no_product_with_a_readable_process_list_is_an_empty_fact() -> None:
    host = ReplayHost(procs=[ProcessInfo(1, "systemd"), ProcessInfo(2, "sshd")])
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact) and len(outcome.fact.products) == 0


def test_no_product_and_no_process_list_is_an_error() -> None:
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, ReplayHost(procs=None))
    assert outcome.fact is None and outcome.errors[0].source == "processes"


def test_defender_health_and_process_merge() -> None:
    host = ReplayHost(procs=[ProcessInfo(90, "wdavdaemon"), ProcessInfo(91, "falcon-sensor")])
    host.with_tool("mdatp")
    host.commands[("mdatp", "health")] = ok(fixture_text("mdatp/mdatp-health-ubuntu2004.out"))
    outcome = run(antivirus.probe, pb.FACT_ANTIVIRUS, host)
    assert isinstance(outcome.fact, pb.AntivirusFact)
    products = {p.name: p for p in outcome.fact.products}
    assert set(products) == {"Microsoft Defender for Endpoint", "CrowdStrike Falcon"}
    mde = products["Microsoft Defender for Endpoint"]
    assert mde.source == "mdatp" and mde.real_time_protection and mde.signatures_up_to_date
    assert mde.signature_version == "1.395.227.0" and list(mde.processes) == ["wdavdaemon"]


# --- updates ---------------------------------------------------------------------------


def _apt_host(config_dump: str) -> ReplayHost:
    host = ReplayHost().with_tool("apt-get").with_tool("apt-config")
    host.commands[tuple(cmd.APT_SIMULATE)] = recorded(
        "apt/apt-get-s-dist-upgrade-debian12-pending"
    )
    host.commands[("apt-config", "dump")] = recorded(config_dump)
    host.dirs["/var/lib/apt/lists"] = ["deb.debian.org_debian_dists_bookworm_InRelease", "lock"]
    host.mtimes["/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease"] = 1.7e9
    host.mtimes["/var/log/apt/history.log"] = 1.6e9
    return host


def test_apt_pending_security_and_dates() -> None:
    outcome = run(updates.probe, pb.FACT_OS_UPDATES, _apt_host("apt/apt-config-dump-debian12"))
    fact = outcome.fact
    assert isinstance(fact, pb.OsUpdatesFact)
    assert fact.source == "apt" and fact.pending_total == 124 and fact.pending_security == 81
    assert "libgcrypt20" in fact.pending_security_names and len(fact.pending_security_names) == 50
    assert fact.last_checked.seconds == 1_700_000_000
    assert fact.last_installed.seconds == 1_600_000_000
    assert fact.HasField("automatic_updates") and not fact.automatic_updates
    assert not fact.HasField("reboot_required")  # nothing here writes the flag


def test_apt_unattended_upgrades_on_and_reboot_flag() -> None:
    host = _apt_host("apt/apt-config-dump-auto-upgrades-on").with_tool("unattended-upgrade")
    host.files["/var/run/reboot-required"] = b"*** System restart required ***\n"
    fact = run(updates.probe, pb.FACT_OS_UPDATES, host).fact
    assert isinstance(fact, pb.OsUpdatesFact)
    assert fact.automatic_updates and fact.reboot_required


def test_dnf_security_from_cache() -> None:
    host = ReplayHost().with_tool("dnf")
    host.commands[("dnf", "-q", "-C", "updateinfo", "list", "--security")] = ok(
        fixture_text("dnf/dnf-updateinfo-list-security-fedora34.out")
    )
    host.commands[("dnf", "-q", "-C", "check-update")] = (0, b"", b"")
    fact = run(updates.probe, pb.FACT_OS_UPDATES, host).fact
    assert isinstance(fact, pb.OsUpdatesFact)
    assert fact.source == "dnf" and fact.pending_security == 16


def test_no_package_manager() -> None:
    outcome = run(updates.probe, pb.FACT_OS_UPDATES, ReplayHost())
    assert outcome.fact is None
    assert outcome.errors[0].code == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND


# --- Wi-Fi and VPN ---------------------------------------------------------------------


def wifi_host() -> ReplayHost:
    """A Linux host on Wi-Fi, from recorded nmcli outputs (shared with the live NM test)."""
    host = ReplayHost().with_tool("nmcli")
    host.dirs["/sys/class/net"] = ["eno1", "lo", "wlo1"]
    host.dirs["/sys/class/net/wlo1/wireless"] = []
    host.commands[("nmcli", "-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device")] = ok(
        fixture_text("nmcli/nmcli-device-wifi-connected.out")
    )
    host.commands[
        ("nmcli", "-t", "-f", "IN-USE,SSID,BSSID,CHAN,SIGNAL,SECURITY",
         "device", "wifi", "list", "--rescan", "no")
    ] = ok(fixture_text("nmcli/nmcli-wifi-list-in-use-mesh.out"))  # fmt: skip
    # NetworkManager without a connectivity URI (Debian's default): it cannot tell a portal.
    host.commands[cmd.NMCLI_CONNECTIVITY] = recorded(
        "nmcli/nmcli-device-connectivity-checks-off-netns"
    )
    return host


def test_no_wireless_interface_is_a_fact() -> None:
    host = ReplayHost()
    host.dirs["/sys/class/net"] = ["eth0", "lo"]
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert isinstance(outcome.fact, pb.WifiFact) and not outcome.fact.has_wifi_interface
    assert outcome.errors == []


def test_home_network_is_reported_only_as_a_hash() -> None:
    report = pb.PostureReport()
    report.vpn.active = True
    config = ProbeConfig(network_hash_key=b"k")
    fact = run(wifi.probe, pb.FACT_WIFI, wifi_host(), config, report).fact
    assert isinstance(fact, pb.WifiFact) and fact.has_wifi_interface
    (session,) = fact.sessions
    expected = "h:" + hmac.new(b"k", b"HomeNet", hashlib.sha256).hexdigest()[:32]
    assert session.network_id == expected
    assert "HomeNet" not in str(fact)
    assert session.classification == pb.NETWORK_CLASS_OTHER
    assert session.security == pb.WIFI_SECURITY_WPA2_PERSONAL
    assert session.interface == "wlo1" and session.vpn_up
    assert session.started_at.seconds > 0 and not session.HasField("ended_at")


def test_trusted_network_keeps_its_name() -> None:
    config = ProbeConfig(trusted_networks=("HomeNet",))
    fact = run(wifi.probe, pb.FACT_WIFI, wifi_host(), config).fact
    assert isinstance(fact, pb.WifiFact)
    assert fact.sessions[0].network_id == "HomeNet"
    assert fact.sessions[0].classification == pb.NETWORK_CLASS_TRUSTED
    assert not fact.sessions[0].vpn_up


def test_wireless_without_nmcli_is_command_not_found() -> None:
    host = wifi_host()
    del host.tools["nmcli"]
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert outcome.fact is None
    assert outcome.errors[0].code == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND


def test_networkmanager_not_running_is_command_failed() -> None:
    host = wifi_host()
    host.commands[("nmcli", "-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device")] = recorded(
        "nmcli/nmcli-device-no-daemon-debian12"
    )
    outcome = run(wifi.probe, pb.FACT_WIFI, host)
    assert outcome.fact is None
    assert outcome.errors[0].code == pb.PROBE_ERROR_CODE_COMMAND_FAILED


def test_vpn_interfaces_by_name_and_sysfs() -> None:
    host = ReplayHost(
        interfaces=[
            NetInterface("eth0", True, 1500, ("up", "running")),
            NetInterface("wg0", True, 1420, ("up", "pointopoint", "running")),
            NetInterface("tun0", True, 1500, ("up", "pointopoint")),  # nobody attached
            NetInterface("corpvpn", True, 1400, ("up", "running")),
        ]
    )
    host.files["/sys/class/net/corpvpn/uevent"] = b"DEVTYPE=wireguard\nINTERFACE=corpvpn\n"
    host.files["/sys/class/net/eth0/type"] = b"1\n"
    fact = run(vpn.probe, pb.FACT_VPN, host).fact
    assert isinstance(fact, pb.VpnFact) and fact.active
    found = {i.name: (i.kind, i.up) for i in fact.interfaces}
    assert found == {
        "wg0": ("wireguard", True),
        "tun0": ("tun", False),
        "corpvpn": ("wireguard", True),
    }


def test_a_virtual_machine_s_tap_device_is_no_vpn() -> None:
    # libvirt's vnet0 (a tap device in a bridge) was an active VPN: any running VM made public
    # Wi-Fi pass. The kernel's sysfs as it is for each: a tap device's link type is Ethernet
    # (1) and it has tun_flags; a bridge's port has a brport folder.
    host = ReplayHost(interfaces=[
        NetInterface("vnet0", True, 1500, ("up", "running")),  # libvirt, in virbr0
        NetInterface("tap0", True, 1500, ("up", "running")),  # QEMU's, in br0
        NetInterface("tap1", True, 1500, ("up", "running")),  # OpenVPN in TAP mode: a VPN
        NetInterface("tun0", True, 1500, ("up", "pointopoint", "running")),
    ])  # fmt: skip
    for name in ("vnet0", "tap0", "tap1"):
        host.files[f"/sys/class/net/{name}/type"] = b"1\n"
        host.files[f"/sys/class/net/{name}/tun_flags"] = b"0x1002\n"
    host.files["/sys/class/net/tun0/type"] = b"65534\n"
    host.files["/sys/class/net/tun0/tun_flags"] = b"0x1001\n"
    for name in ("vnet0", "tap0"):
        host.dirs[f"/sys/class/net/{name}/brport"] = ["state"]
    fact = run(vpn.probe, pb.FACT_VPN, host).fact
    assert isinstance(fact, pb.VpnFact)
    assert {i.name: i.kind for i in fact.interfaces} == {"tap1": "tap", "tun0": "tun"}
    host.interfaces = host.interfaces[:2]  # the VMs alone: no VPN
    alone = run(vpn.probe, pb.FACT_VPN, host).fact
    assert isinstance(alone, pb.VpnFact) and not alone.active and len(alone.interfaces) == 0


def test_no_vpn_interface_is_inactive() -> None:
    host = ReplayHost(interfaces=[NetInterface("eth0", True, 1500, ("up", "running"))])
    fact = run(vpn.probe, pb.FACT_VPN, host).fact
    assert isinstance(fact, pb.VpnFact) and not fact.active and len(fact.interfaces) == 0


# --- disk encryption -------------------------------------------------------------------


def test_old_lsblk_falls_back_to_mountpoint() -> None:
    host = ReplayHost().with_tool("lsblk")
    host.commands[("lsblk", "-J", "-o", "NAME,TYPE,FSTYPE,FSVER,MOUNTPOINTS,PKNAME")] = recorded(
        "lsblk/lsblk-bad-column"
    )
    host.commands[("lsblk", "-J", "-o", "NAME,TYPE,FSTYPE,MOUNTPOINT,PKNAME")] = recorded(
        "lsblk/lsblk-old-mountpoint-column"
    )
    fact = run(disk.probe, pb.FACT_DISK_ENCRYPTION, host).fact
    assert isinstance(fact, pb.DiskEncryptionFact)
    assert {v.mount_point for v in fact.volumes} == {"/", "/mnt/dpplain"}


def test_root_missing_from_lsblk_comes_from_mounts() -> None:
    host = ReplayHost().with_tool("lsblk")
    host.commands[("lsblk", "-J", "-o", "NAME,TYPE,FSTYPE,FSVER,MOUNTPOINTS,PKNAME")] = ok(
        '{"blockdevices": []}'
    )
    host.files["/proc/self/mounts"] = b"overlay / overlay rw,relatime 0 0\nproc /proc proc rw 0 0\n"
    fact = run(disk.probe, pb.FACT_DISK_ENCRYPTION, host).fact
    assert isinstance(fact, pb.DiskEncryptionFact)
    (root,) = fact.volumes
    assert root.mount_point == "/" and root.device == "overlay"
    assert not root.HasField("encrypted")  # nothing seen says either way


def test_no_lsblk_is_command_not_found() -> None:
    outcome = run(disk.probe, pb.FACT_DISK_ENCRYPTION, ReplayHost())
    assert outcome.fact is None
    assert outcome.errors[0].code == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND


