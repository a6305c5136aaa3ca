"""What a pppd's options say its PPP link runs over: a VPN (PPTP, L2TP) or a dial-up (PPPoE).

pppd makes the same ppp0 for a PPTP or L2TP VPN as for a broadband dial-up over PPPoE, and
only the options it was started with tell them apart (pppd(8)):

* `plugin rp-pppoe.so` / `pppoe.so` (ppp's own PPPoE plugin, renamed in ppp 2.5; the examples
  Debian's ppp ships, peers-pppoe), `pppoatm.so` (DSL over ATM), or a `pty` running rp-pppoe's
  user-mode client `pppoe` (Debian's pppoe package, /etc/ppp/peers/dsl-provider): a dial-up.
  NetworkManager's own `nm-pppd-plugin.so` too, unless a VPN's word is beside it:
  NetworkManager runs pppd with it for its devices (PPPoE, a mobile modem); its VPN plugins
  load their own instead.
* `pty "pptp <server> --nolaunchpppd"` (pptp-linux's USING), NetworkManager's
  `nm-pptp-pppd-plugin.so`: PPTP. `plugin pppol2tp.so` / `openl2tp.so` (the kernel's L2TP
  driver, loaded by xl2tpd), NetworkManager's `nm-l2tp-pppd-plugin.so`: L2TP.
* `call <peer>`: the options in /etc/ppp/peers/<peer> (what `pon <peer>` runs), which say the
  same with the same words.

A PPPoE or PPPoA word wins over a VPN's: a PPPoE link must never count as a VPN. Pure, for
tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

DIALUP = "dialup"  # the verdict of a broadband or modem dial-up: no VPN
_DIALUP_PLUGINS = frozenset({"rp-pppoe.so", "pppoe.so", "pppoatm.so"})
# NetworkManager's device PPP (nm-ppp-manager.c's NM_PPPD_PLUGIN). A weaker word: a VPN's
# (NetworkManager 0.6's nm-ppp-starter loaded it beside `pty pptp`) says more.
_DEVICE_PLUGINS = frozenset({"nm-pppd-plugin.so"})
_DIALUP_PTYS = frozenset({"pppoe"})
_VPN_PLUGINS = {
    "pppol2tp.so": "l2tp",
    "openl2tp.so": "l2tp",
    "nm-l2tp-pppd-plugin.so": "l2tp",
    "nm-pptp-pppd-plugin.so": "pptp",
}
_VPN_PTYS = {"pptp": "pptp"}
# The programs that fork pppd themselves, each for one VPN: xl2tpd (control.c, start_pppd;
# over a pty, without a plugin, when the kernel's L2TP driver is not used) and openfortivpn
# (tunnel.c, pppd_run; its own options, no plugin).
VPN_PARENTS = {"xl2tpd": "l2tp", "openfortivpn": "openfortivpn"}
# Options whose value is the next word; the ones read here, and the others that take one, so
# that a value is never read as an option.
_WITH_VALUE = frozenset({"plugin", "pty", "call", "file", "ifname", "unit", "linkname"})


@dataclass(frozen=True)
class PppdOptions:
    """The few options of one pppd (or of one options file) that say what its link is."""

    plugins: tuple[str, ...] = ()  # file names, without their folder
    ptys: tuple[str, ...] = ()  # the program each `pty` runs, without its folder
    calls: tuple[str, ...] = ()  # peer names
    ifname: str = ""  # the interface it makes, from `ifname` or `unit`; "" when not given
    linkname: str = ""


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def options_of(words: Sequence[str]) -> PppdOptions:
    """The options among pppd's words (its argv without argv[0], or an options file's)."""
    plugins: list[str] = []
    ptys: list[str] = []
    calls: list[str] = []
    ifname = linkname = ""
    unit = ""
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if word in _WITH_VALUE and i + 1 < len(words) else None
        if value is None:
            i += 1
            continue
        if word == "plugin":
            plugins.append(_base(value))
        elif word == "pty":
            program = value.split()
            if program:
                ptys.append(_base(program[0]))
        elif word == "call":
            calls.append(value)
        elif word == "ifname":
            ifname = value
        elif word == "unit":
            unit = value
        elif word == "linkname":
            linkname = value
        i += 2
    if not ifname and unit.isdigit():
        ifname = f"ppp{int(unit)}"
    return PppdOptions(tuple(plugins), tuple(ptys), tuple(calls), ifname, linkname)


def cmdline_words(data: bytes) -> list[str]:
    """pppd's argv without argv[0], from /proc/<pid>/cmdline (each argument ends in a NUL)."""
    parts = data.decode("utf-8", "replace").split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts:
        raise ParseError("cmdline: empty (the process has exited or is a kernel thread)")
    return parts[1:]


def file_words(text: str) -> list[str]:
    """The words of a pppd options file as pppd reads them (options.c, getword): separated by
    white space, `#` at a word's start comments out the rest of the line, double or single
    quotes keep white space inside one word, a backslash keeps the next character."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            word.append(text[i + 1])
            in_word = True
            i += 2
            continue
        if quote:
            if char == quote:
                quote = ""
            else:
                word.append(char)
        elif char in "\"'":
            quote, in_word = char, True
        elif char.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif char == "#" and not in_word:
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        else:
            word.append(char)
            in_word = True
        i += 1
    if quote:
        raise ParseError("pppd options file: a quote is not closed")
    if in_word:
        words.append("".join(word))
    return words


def link_kind(options: Iterable[PppdOptions], parent: str = "") -> str:
    """What the link is: a VPN's kind ("pptp", "l2tp", "openfortivpn"), DIALUP, or "" when
    nothing read says (a modem's `/dev/ttyUSB0` and chat script, an unknown plugin).
    `parent` is the name of the process that started pppd."""
    every = list(options)
    plugins = {p for o in every for p in o.plugins}
    ptys = {p for o in every for p in o.ptys}
    if plugins & _DIALUP_PLUGINS or ptys & _DIALUP_PTYS:
        return DIALUP
    for plugin in sorted(plugins):
        if plugin in _VPN_PLUGINS:
            return _VPN_PLUGINS[plugin]
    for pty in sorted(ptys):
        if pty in _VPN_PTYS:
            return _VPN_PTYS[pty]
    if plugins & _DEVICE_PLUGINS:
        return DIALUP
    return VPN_PARENTS.get(parent, "")


def pid_file(text: str) -> tuple[int, str]:
    """The pid (and interface, "" if absent) in a pid file pppd writes: /var/run/ppp0.pid holds
    the pid; /var/run/ppp-<linkname>.pid the pid and then the interface (pppd's main.c)."""
    lines = text.split()
    if not lines or not lines[0].isdigit():
        raise ParseError("pppd pid file: no pid on its first line")
    return int(lines[0]), lines[1] if len(lines) > 1 else ""


def parent_pid(stat: str) -> int:
    """The parent's pid in /proc/<pid>/stat (proc(5): the 4th field, after `(comm) state`;
    comm may hold spaces and parentheses, so the fields are counted from the last ")")."""
    fields = stat[stat.rfind(")") + 1 :].split()
    if len(fields) < 2 or not fields[1].isdigit():
        raise ParseError("/proc/<pid>/stat: no parent pid after the command name")
    return int(fields[1])
