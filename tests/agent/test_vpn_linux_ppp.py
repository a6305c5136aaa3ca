"""Linux PPP links judged by the pppd that owns them (agent.probes.linux.ppp_links, vpn).

The link is the real ppp0 of a net-tools ifconfig (interfaces/, up); what pppd shows comes
from tests/fixtures/linux/ppp/ (README.md, "PPP links (ppp/)"): /proc/<pid>/cmdline and stat
recorded of stand-ins given each client's argv, and real peer files. The pid files hold what
pppd writes ("%d\\n", main.c); the process list is the one the recorded stat files name."""

from __future__ import annotations

import json

import pytest

from devposture.agent.host import ProcessInfo
from devposture.agent.host.bundle import BundleHost, RecordingHost
from devposture.agent.host.redact import redact_ppp_options
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.linux import vpn
from devposture.agent.probes.outcome import FactOutcome
from devposture.policy.checks import State
from devposture.v1 import devposture_pb2 as pb
from tests.agent.public_wifi import public_session_verdict
from tests.agent.replay import ReplayHost, fixture_bytes, fixture_text
from tests.agent.test_probes_linux import run
from tests.agent.test_vpn_linux_outputs import interfaces_from_ifconfig

PPP0 = interfaces_from_ifconfig("interfaces/ifconfig-pptpd-ppp0-ubuntu-forums.txt")[2]
PEERS = {
    "dsl-provider": "peer-dsl-provider-pty-pppoe-debian-pppoe-3.15.txt",
    "myvpn": "peer-myvpn-pptp-ubuntu-14.04-blog.txt",
}


def _comm(stat: str) -> tuple[int, str]:
    return int(stat.split(maxsplit=1)[0]), stat[stat.index("(") + 1 : stat.rindex(")")]


def pppd_host(
    recording: str, pid_file: str = "/var/run/ppp0.pid", peers: bool = True
) -> ReplayHost:
    """A host with ppp0 up, owned by the stand-in pppd `recording` (ppp/proc/<recording>.*)."""
    stat = fixture_text(f"ppp/proc/{recording}.stat")
    parent = fixture_text(f"ppp/proc/{recording}.parent-stat")
    pid, _ = _comm(stat)
    host = ReplayHost(interfaces=[PPP0])
    host.procs = [ProcessInfo(pid, "pppd"), ProcessInfo(*_comm(parent))]
    host.files[f"/proc/{pid}/cmdline"] = fixture_bytes(f"ppp/proc/{recording}.cmdline")
    host.files[f"/proc/{pid}/stat"] = stat.encode()
    if "/ppp-" in pid_file:  # a linkname's: the pid, then the interface
        host.files[pid_file] = f"{pid}\nppp0\n".encode()
        folder, name = pid_file.rsplit("/", 1)
        host.dirs[folder] = [name]
    else:
        host.files[pid_file] = f"{pid}\n".encode()
    if peers:
        for name, fixture in PEERS.items():
            host.files[f"/etc/ppp/peers/{name}"] = fixture_bytes(f"ppp/{fixture}")
    return host


def outcome_of(host: ReplayHost) -> FactOutcome:
    outcome = run(vpn.probe, pb.FACT_VPN, host)
    assert isinstance(outcome.fact, pb.VpnFact)
    return outcome


def listed(outcome: FactOutcome) -> list[tuple[str, str, bool]]:
    assert isinstance(outcome.fact, pb.VpnFact)
    return [(i.name, i.kind, i.up) for i in outcome.fact.interfaces]


@pytest.mark.parametrize(
    ("recording", "pid_file", "kind"),
    [
        ("nm-pptp", "/var/run/ppp0.pid", "pptp"),  # pty pptp, in its argv
        ("xl2tpd-pppol2tp", "/var/run/ppp0.pid", "l2tp"),  # plugin pppol2tp.so
        (
            "xl2tpd-pty",
            "/var/run/pppd/ppp0.pid",
            "l2tp",
        ),  # no plugin: its parent, xl2tpd (ppp 2.5's folder)
        ("openfortivpn", "/var/run/ppp0.pid", "openfortivpn"),  # its parent
        ("pon-myvpn", "/var/run/ppp-myvpn.pid", "pptp"),  # call myvpn: the peer file's pty pptp
    ],
)
def test_a_vpns_ppp_link_is_a_vpn(recording: str, pid_file: str, kind: str) -> None:
    outcome = outcome_of(pppd_host(recording, pid_file))
    assert outcome.errors == [] and listed(outcome) == [("ppp0", kind, True)]
    assert outcome.fact.active  # type: ignore[union-attr]


def test_a_pppoe_dial_up_is_no_vpn_and_nothing_to_say() -> None:
    # `pon dsl-provider`: Debian's pppoe package's peer file, pty "/usr/sbin/pppoe -I eth0 ...".
    outcome = outcome_of(pppd_host("pon-dsl-provider"))
    assert outcome.errors == [] and listed(outcome) == []
    assert not outcome.fact.active  # type: ignore[union-attr]


def test_a_stale_pid_file_names_no_pppd() -> None:
    # The pid file names a process that is no pppd (its argv[0] is another program's).
    host = pppd_host("nm-pptp")
    pid = int(host.files["/var/run/ppp0.pid"])
    host.files[f"/proc/{pid}/cmdline"] = b"/usr/bin/sleep\x00600\x00"
    outcome = outcome_of(host)
    assert listed(outcome) == [] and [(e.source, e.code) for e in outcome.errors] == [
        ("ppp", pb.PROBE_ERROR_CODE_NO_SOURCE)
    ]
    assert outcome.errors[0].message.startswith("PPP link(s) ppp0 up with no pppd found")


def test_a_pppd_found_by_its_unit_option_without_a_pid_file() -> None:
    # NetworkManager's pppd without its pid file: its argv names no interface, so nothing
    # ties it to ppp0; with `unit 0` (ppp0; NetworkManager-l2tp passes one) it does.
    host = pppd_host("nm-pptp")
    del host.files["/var/run/ppp0.pid"]
    assert listed(outcome_of(host)) == [] and outcome_of(host).errors
    pid = host.procs[0].pid  # type: ignore[index]
    host.files[f"/proc/{pid}/cmdline"] += b"unit\x000\x00"
    outcome = outcome_of(host)
    assert outcome.errors == [] and listed(outcome) == [("ppp0", "pptp", True)]


def test_an_unreadable_peer_file_keeps_the_link_unknown() -> None:
    outcome = outcome_of(pppd_host("pon-myvpn", peers=False))
    assert listed(outcome) == [] and [(e.source, e.code) for e in outcome.errors] == [
        ("ppp", pb.PROBE_ERROR_CODE_NO_SOURCE)
    ]
    assert "pppd options could not be read" in outcome.errors[0].message


def test_options_that_name_neither_keep_the_link_unknown() -> None:
    # xl2tpd's pty pppd with its parent gone from the process list: nothing says L2TP.
    host = pppd_host("xl2tpd-pty")
    host.procs = host.procs[:1]  # type: ignore[index]
    outcome = outcome_of(host)
    assert listed(outcome) == []
    assert "name neither a VPN nor a dial-up" in outcome.errors[0].message


@pytest.mark.parametrize(
    ("recording", "state"),
    [("pon-dsl-provider", State.FAIL), ("pon-myvpn", State.PASS), ("xl2tpd-pty", State.PASS)],
)
def test_public_wifi_passes_on_a_vpns_ppp_link_and_never_on_pppoe(
    recording: str, state: State
) -> None:
    assert public_session_verdict(outcome_of(pppd_host(recording))) == state
    unknown = pppd_host(recording)
    unknown.procs, unknown.files = [], {}
    assert public_session_verdict(outcome_of(unknown)) == State.UNKNOWN


def test_a_diagnostic_bundle_keeps_no_ppp_account_and_replays_the_same() -> None:
    # pppd's options may hold the dial-up's account and its PAP password (pppd(8): `user`,
    # `password`), in a peer file and on its command line. A diagnostic bundle, which IT
    # sends on, keeps what the probe reads and "x"s for those values.
    host = pppd_host("pon-dsl-provider")
    # A real peer file naming its account ("yourusername"), in place of Debian's example.
    host.files["/etc/ppp/peers/dsl-provider"] = fixture_bytes("ppp/peer-centurylink-pppoe-blog.txt")
    pid = host.procs[0].pid  # type: ignore[index]
    host.files[f"/proc/{pid}/cmdline"] += b"password\x00hunter2\x00"
    recorder = RecordingHost(host)
    live = outcome_of(recorder)  # type: ignore[arg-type]
    document = json.loads(json.dumps(recorder.bundle("test", ProbeConfig())))
    bundle = BundleHost(document)
    peer = bundle.read_bytes("/etc/ppp/peers/dsl-provider", 64 * 1024)
    argv = bundle.read_bytes(f"/proc/{pid}/cmdline", 32 * 1024)
    assert b"yourusername" not in peer and b'user "xxxxxxxxxxxx"' in peer
    assert b"hunter2" not in argv and argv.endswith(b"password\x00xxxxxxx\x00")
    assert b"plugin rp-pppoe.so" in peer  # what the verdict rests on is kept
    assert "yourusername" not in json.dumps(document) and "hunter2" not in json.dumps(document)
    replayed = outcome_of(bundle)  # type: ignore[arg-type]
    assert (listed(replayed), replayed.errors) == (listed(live), live.errors) == ([], [])


def test_only_the_accounts_and_passwords_of_pppd_options_are_masked() -> None:
    peer = b'plugin rp-pppoe.so eth0\nuser "me@isp"\nname dsl\nhide-password\n' \
           b"password 's e'\npty \"pptp vpn.example.com --nolaunchpppd\"\n"  # fmt: skip
    assert redact_ppp_options(peer) == (
        b'plugin rp-pppoe.so eth0\nuser "xxxxxx"\nname xxx\nhide-password\n'
        b"password 'xxx'\npty \"pptp vpn.example.com --nolaunchpppd\"\n"
    )
    argv = b"/usr/sbin/pppd\x00call\x00myvpn\x00user\x00bob\x00remotename\x00PPTP\x00unit\x000\x00"
    assert redact_ppp_options(argv) == (
        b"/usr/sbin/pppd\x00call\x00myvpn\x00user\x00xxx\x00remotename\x00xxxx\x00unit\x000\x00"
    )
