"""pppd's options (agent.parsers.pppd) as real clients and dial-ups give them.

Sources in tests/fixtures/linux/README.md, "PPP links (ppp/)": peer files Debian's packages ship
and ones people posted, xl2tpd's own log of the argv it runs pppd with, a real `ps -ef` and
`systemctl status` line, and /proc files recorded of stand-ins given those argv."""

from __future__ import annotations

import re

import pytest

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.pppd import (
    DIALUP,
    PppdOptions,
    cmdline_words,
    file_words,
    link_kind,
    options_of,
    parent_pid,
    pid_file,
)
from tests.agent.replay import fixture_bytes, fixture_text

_LOGGED_WORD = re.compile(r'^.*xl2tpd\[\d+\]: "(?P<word>[^"]*)"\s*$')


def xl2tpd_logged_argv(relative: str) -> list[str]:
    """The argv xl2tpd logged it ran pppd with (start_pppd: one quoted word a line)."""
    return [
        m["word"] for line in fixture_text(relative).splitlines() if (m := _LOGGED_WORD.match(line))
    ]


def peer(name: str) -> PppdOptions:
    return options_of(file_words(fixture_text(f"ppp/{name}")))


@pytest.mark.parametrize(
    "name",
    [
        "peer-pppoe-plugin-debian-ppp-2.4.9-examples.txt",  # plugin rp-pppoe.so
        "peer-dsl-provider-pty-pppoe-debian-pppoe-3.15.txt",  # pty "/usr/sbin/pppoe -I eth0 ..."
        "peer-centurylink-pppoe-blog.txt",  # plugin rp-pppoe.so eth0, under a comment
    ],
)
def test_a_pppoe_peer_file_is_a_dial_up(name: str) -> None:
    assert link_kind([peer(name)]) == DIALUP


def test_a_pptp_peer_file_is_pptp_and_names_its_link() -> None:
    # A real Chinese user's /etc/ppp/peers/myvpn (server and name redacted as posted):
    # `pty "pptp *** --nolaunchpppd ..."` is one quoted word; `linkname myvpn` names the pid
    # file /var/run/ppp-myvpn.pid; `# 特别关键` is a comment after `mtu 1416`.
    options = peer("peer-myvpn-pptp-ubuntu-14.04-blog.txt")
    assert options.ptys == ("pptp",) and options.linkname == "myvpn"
    assert link_kind([options]) == "pptp"
    assert "1416" in file_words(fixture_text("ppp/peer-myvpn-pptp-ubuntu-14.04-blog.txt"))


def test_xl2tpd_with_the_kernels_l2tp_driver_is_l2tp() -> None:
    argv = xl2tpd_logged_argv("ppp/xl2tpd-start-pppd-pppol2tp-openwrt-packages-1334.txt")
    assert argv[:3] == ["/usr/sbin/pppd", "plugin", "pppol2tp.so"]
    assert link_kind([options_of(argv[1:])]) == "l2tp"


def test_xl2tpd_over_a_pty_says_nothing_but_its_parent_does() -> None:
    # Without the kernel's driver xl2tpd runs pppd on a pty with no plugin: only the parent
    # tells it (the argv alone is any pppd's).
    argv = xl2tpd_logged_argv("ppp/xl2tpd-start-pppd-pty-alpine-xl2tpd-155.txt")
    assert argv[:3] == ["/usr/sbin/pppd", "/dev/pts/1", "passive"]
    options = options_of(argv[1:])
    assert link_kind([options]) == ""
    assert link_kind([options], parent="xl2tpd") == "l2tp"


def test_words_as_ps_prints_them_tell_the_same() -> None:
    # ps and systemctl join argv with spaces, so pty's one argument reads as several words;
    # the program it runs is still the word after `pty`.
    line = next(
        line
        for line in fixture_text("ppp/systemctl-status-networkmanager-pptp-cgroup.txt").splitlines()
        if " /sbin/pppd " in line
    )
    words = line.split(" /sbin/pppd ", 1)[1].split()
    assert link_kind([options_of(words)]) == "pptp"
    ps = fixture_text("ppp/ps-ef-pppd-xl2tpd-lns-xl2tpd-103.txt").split(" /usr/sbin/pppd ", 1)[1]
    assert link_kind([options_of(ps.split())]) == ""


def test_the_recorded_cmdlines_read_back_as_their_argv() -> None:
    words = cmdline_words(fixture_bytes("ppp/proc/nm-pptp.cmdline"))
    assert words[:2] == [
        "pty",
        "/sbin/pptp 192.168.128.3 --nolaunchpppd --loglevel 0 --logstring nm-pptp-service-1803",
    ]
    assert link_kind([options_of(words)]) == "pptp"
    assert options_of(cmdline_words(fixture_bytes("ppp/proc/pon-myvpn.cmdline"))).calls == (
        "myvpn",
    )
    openfortivpn = options_of(cmdline_words(fixture_bytes("ppp/proc/openfortivpn.cmdline")))
    assert link_kind([openfortivpn]) == ""
    assert link_kind([openfortivpn], parent="openfortivpn") == "openfortivpn"
    with pytest.raises(ParseError):
        cmdline_words(b"")


@pytest.mark.parametrize(
    ("plugins", "ptys", "kind"),
    [
        # NetworkManager's PPPoE: its own plugin beside rp-pppoe.so (pppoe.so since ppp 2.5).
        (("nm-pppd-plugin.so", "rp-pppoe.so"), (), DIALUP),
        (("nm-pppd-plugin.so", "pppoe.so"), (), DIALUP),
        (("nm-pppd-plugin.so",), (), DIALUP),  # a mobile modem's
        (("nm-l2tp-pppd-plugin.so", "pppol2tp.so"), (), "l2tp"),
        (("nm-pptp-pppd-plugin.so",), ("pptp",), "pptp"),
        # A VPN's word beside NetworkManager's device plugin says more; PPPoE's always wins.
        (("nm-pppd-plugin.so",), ("pptp",), "pptp"),
        (("rp-pppoe.so", "nm-pptp-pppd-plugin.so"), ("pptp",), DIALUP),
        ((), ("ssh",), ""),
    ],
)
def test_which_word_wins(plugins: tuple[str, ...], ptys: tuple[str, ...], kind: str) -> None:
    assert link_kind([PppdOptions(plugins=plugins, ptys=ptys)]) == kind


def test_options_name_the_interface_and_file_words_keep_quotes() -> None:
    assert options_of(["unit", "3"]).ifname == "ppp3"
    assert options_of(["ifname", "vpn0", "unit", "3"]).ifname == "vpn0"
    assert options_of(["plugin", "/usr/lib/pppd/2.4.9/rp-pppoe.so"]).plugins == ("rp-pppoe.so",)
    assert file_words("user \"a b\" # c\nplugin 'x y'\\ z\n") == ["user", "a b", "plugin", "x y z"]
    with pytest.raises(ParseError):
        file_words('pty "pptp host')


def test_pid_files_and_stat() -> None:
    # pppd writes "%d\n" (main.c, create_pidfile) and, for a linkname, the interface after it.
    assert pid_file("1807\n") == (1807, "")
    assert pid_file("1807\nppp0\n") == (1807, "ppp0")
    with pytest.raises(ParseError):
        pid_file("")
    stat = fixture_text("ppp/proc/xl2tpd-pty.stat")
    parent = fixture_text("ppp/proc/xl2tpd-pty.parent-stat")
    assert parent_pid(stat) == int(parent.split()[0])
    assert parent_pid("7 (a) b) S 1 7 7 0") == 1  # a name with ") " in it
    with pytest.raises(ParseError):
        parent_pid("7 (pppd)")
