"""The RAS phonebook (agent.parsers.windows.phonebook, agent.probes.windows.phonebooks) that
tells a VPN's PPP adapter from a PPPoE dial-up's, on real machines' phonebooks. Sources: the
"phonebook" table of tests/fixtures/windows/README.md."""

from __future__ import annotations

from devposture.agent.parsers.windows.ipconfig import Adapter
from devposture.agent.parsers.windows.phonebook import parse_phonebook
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.windows import vpn
from devposture.agent.probes.windows.phonebooks import ALL_USERS, PER_USER, read_phonebooks
from devposture.agent.probes.windows.vpn_adapters import adapter_kind, ppp_link
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

SIX_TU = "phonebook/rasphone-zh-pppoe-two-ikev2-6tu-kid.pbk"
RASLINK = "phonebook/rasphone-zh-pppoe-raslink.pbk"
HOME = "C:\\Users\\lenovo"


def test_a_chinese_phonebook_with_a_pppoe_dial_up_and_two_ikev2_vpns() -> None:
    # UTF-8 with CRLF line ends, as Windows wrote it (Encoding=1).
    text = decode_output(fixture(SIX_TU), "cp936")
    assert parse_phonebook(text) == {
        "宽带连接": "broadband", "aliyun-hk": "vpn", "pub.6tu.me": "vpn",
    }  # fmt: skip


def test_a_phonebook_whose_device_name_is_in_chinese() -> None:
    # "Device=WAN 微型端口(PPPOE)": the type, not the localised device name, is read.
    assert parse_phonebook(decode_output(fixture(RASLINK), "cp936")) == {"宽带连接": "broadband"}


def test_a_section_without_a_type_or_of_another_type_is_no_guess() -> None:
    # Cut phonebooks, as a read stopped at its limit would leave the last section.
    assert parse_phonebook("[宽带连接]\nEncoding=1\n") == {"宽带连接": "unknown"}
    assert parse_phonebook("[x]\nType=9\n") == {"x": "unknown"}


def host_with_phonebooks() -> WindowsReplayHost:
    host = WindowsReplayHost(console_encoding="cp936", homes=[HOME])
    host.files[ALL_USERS] = fixture(RASLINK)
    host.files[f"{HOME}/{PER_USER}"] = fixture(SIX_TU)
    return host


def test_the_all_users_and_each_users_phonebook_are_read() -> None:
    assert read_phonebooks(host_with_phonebooks()) == {
        "宽带连接": frozenset({"broadband"}),
        "aliyun-hk": frozenset({"vpn"}),
        "pub.6tu.me": frozenset({"vpn"}),
    }
    assert read_phonebooks(WindowsReplayHost(homes=[HOME])) == {}  # none: nothing known


def ppp(name: str) -> Adapter:
    """A connected PPP adapter as Vista and later print one (name and description alike);
    the names are the real phonebooks' entries, the adapter built for them: no recording has
    both a phonebook and its machine's ipconfig."""
    return Adapter("ppp", name, name, False, ("10.0.0.2",))


def test_the_phonebook_entry_decides_before_the_name() -> None:
    phonebook = read_phonebooks(host_with_phonebooks())
    assert [(ppp_link(ppp(n), phonebook), adapter_kind(ppp(n), phonebook)) for n in (
        "宽带连接", "aliyun-hk", "pub.6tu.me", "Office"
    )] == [("broadband", ""), ("vpn", "ppp"), ("vpn", "ppp"), ("unknown", "")]  # fmt: skip
    # An entry named like a VPN but of the broadband type is what the phonebook says.
    assert ppp_link(ppp("VPN"), {"vpn": frozenset({"broadband"})}) == "broadband"
    # A modem's entry is no VPN; two phonebooks that disagree tell nothing.
    assert ppp_link(ppp("x"), {"x": frozenset({"phone"})}) == "dial-up"
    assert ppp_link(ppp("x"), {"x": frozenset({"vpn", "broadband"})}) == "unknown"


def test_a_ppp_adapter_in_no_phonebook_is_judged_by_its_name() -> None:
    host = host_with_phonebooks()
    host.record(cmd.NET_ADAPTERS, (1, b"", b""))
    host.record(cmd.IPCONFIG, output("ipconfig/all-it-xp-pppoe-dsl.txt"))
    outcome = vpn.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport()))
    # The Italian XP's "alberto" is in neither phonebook (they are other machines'): its name
    # decides, and tells nothing.
    assert isinstance(outcome.fact, pb.VpnFact) and not outcome.fact.active
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("ipconfig", pb.PROBE_ERROR_CODE_NO_SOURCE)
    ]
