"""What each PPP link that is up runs over, from the pppd that owns it.

psutil and /sys/class/net show a PPTP or L2TP VPN's ppp0 as they show a PPPoE dial-up's; the
pppd that made it knows (agent.parsers.pppd). It is found, for a link, by the pid file pppd
writes for it (/var/run/ppp0.pid in ppp 2.4, /var/run/pppd/ppp0.pid in ppp 2.5's default
runtime folder), by a /var/run/ppp-<linkname>.pid that names the link on its second line, or
by a running pppd's `ifname` / `unit` option. A pid is taken only when that process's argv[0]
is pppd, so a stale pid file of a pppd long gone names nothing. Then its argv
(/proc/<pid>/cmdline), the peer files its `call` names (/etc/ppp/peers/<peer>, at most a few,
64 KiB each) and, when neither says, the program that started it (xl2tpd, openfortivpn; from
/proc/<pid>/stat and the process list) tell what the link is.

What is read is never sent nor logged: pppd's argv and a peer file may hold a user name or a
`password` option. (A diagnostic bundle records them with those values masked:
`host/redact.redact_ppp_options`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.host import Host, HostError, HostPermissionError
from devposture.agent.parsers import pppd
from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

__all__ = ["NO_PPPD", "UNREADABLE", "UNTOLD", "Judged", "judge_links"]

_RUN_DIRS = ("/var/run", "/var/run/pppd")
_PEERS = "/etc/ppp/peers"
_PID_LIMIT = 64
_CMDLINE_LIMIT = 32 * 1024
_PEER_LIMIT = 64 * 1024
_MAX_PEER_FILES = 4  # a `call` inside a peer file is followed too, this many files in all
_STAT_LIMIT = 1024

NO_PPPD = "no pppd"  # no running pppd owns the link
UNREADABLE = "unreadable"  # pppd's argv or a peer file it calls could not be read
UNTOLD = "untold"  # read, and nothing in it says VPN or dial-up


@dataclass(frozen=True)
class Judged:
    """One link: a VPN's kind, DIALUP, or "" with why it cannot be told (and the code)."""

    kind: str
    why: str = ""
    code: pb.ProbeErrorCode.ValueType = pb.PROBE_ERROR_CODE_NO_SOURCE


def _text(host: Host, path: str, limit: int) -> str:
    return host.read_bytes(path, limit).decode("utf-8", "replace")


class _Pppds:
    """The pppd processes read so far, each read once."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.words: dict[int, list[str] | None] = {}  # None: not a pppd, or gone
        self.denied: set[int] = set()

    def argv(self, pid: int) -> list[str] | None:
        """pppd's words, or None when `pid` is no running pppd."""
        if pid not in self.words:
            try:
                data = self.host.read_bytes(f"/proc/{pid}/cmdline", _CMDLINE_LIMIT)
                argv0 = data.split(b"\0", 1)[0].decode("utf-8", "replace")
                is_pppd = argv0.rsplit("/", 1)[-1] == "pppd"
                self.words[pid] = pppd.cmdline_words(data) if is_pppd else None
            except HostPermissionError:
                self.denied.add(pid)
                self.words[pid] = None
            except (HostError, ParseError):
                self.words[pid] = None
        return self.words[pid]


def _pid_in(host: Host, path: str) -> tuple[int, str] | None:
    try:
        return pppd.pid_file(_text(host, path, _PID_LIMIT))
    except (HostError, ParseError):
        return None


def _owners(host: Host, links: list[str], pppds: _Pppds, procs: dict[int, str]) -> dict[str, int]:
    """The pid of the pppd that owns each link, where one is found."""
    owners: dict[str, int] = {}
    for link in links:
        for folder in _RUN_DIRS:
            found = _pid_in(host, f"{folder}/{link}.pid")
            if found and pppds.argv(found[0]) is not None:
                owners[link] = found[0]
                break
    for folder in _RUN_DIRS:
        if len(owners) == len(links):
            break
        try:
            names = host.list_dir(folder)
        except HostError:
            continue
        for name in names:
            if not (name.startswith("ppp-") and name.endswith(".pid")):
                continue
            found = _pid_in(host, f"{folder}/{name}")
            named = found[1] if found and pppds.argv(found[0]) is not None else ""
            if named in links and named not in owners and found:
                owners[named] = found[0]
    for pid, name in sorted(procs.items()):
        if len(owners) == len(links):
            break
        if name != "pppd" or pid in owners.values():
            continue
        words = pppds.argv(pid)
        ifname = pppd.options_of(words).ifname if words is not None else ""
        if ifname in links and ifname not in owners:
            owners[ifname] = pid
    return owners


def _peer_options(host: Host, first: pppd.PppdOptions) -> list[pppd.PppdOptions] | HostError:
    """The options of the peer files `first` calls (and those they call), or why not."""
    found: list[pppd.PppdOptions] = []
    queue = list(first.calls)
    while queue:
        peer = queue.pop(0)
        if peer.startswith("/") or ".." in peer.split("/"):
            # pppd refuses such a name; it is not a peer file the link came from.
            continue
        if len(found) == _MAX_PEER_FILES:
            return HostError("too many peer files called")
        try:
            options = pppd.options_of(pppd.file_words(_text(host, f"{_PEERS}/{peer}", _PEER_LIMIT)))
        except HostError as exc:
            return exc
        except ParseError:
            return HostError("a peer file could not be read")
        found.append(options)
        queue.extend(options.calls)
    return found


def _parent(host: Host, pid: int, procs: dict[int, str]) -> str:
    try:
        return procs.get(pppd.parent_pid(_text(host, f"/proc/{pid}/stat", _STAT_LIMIT)), "")
    except (HostError, ParseError):
        return ""


def _judge(host: Host, pid: int, words: list[str], procs: dict[int, str]) -> Judged:
    own = pppd.options_of(words)
    if pppd.link_kind([own]) == pppd.DIALUP:
        return Judged(pppd.DIALUP)
    peers = _peer_options(host, own)
    if isinstance(peers, HostError):
        return Judged("", UNREADABLE, peers.code)
    kind = pppd.link_kind([own, *peers])
    if not kind:
        kind = pppd.link_kind([], _parent(host, pid, procs))
    return Judged(kind) if kind else Judged("", UNTOLD)


def judge_links(host: Host, links: list[str]) -> dict[str, Judged]:
    """What each PPP link in `links` (names of links that are up) runs over."""
    try:
        procs = {p.pid: p.name or p.exe_name for p in host.processes()}
    except HostError:
        procs = {}
    pppds = _Pppds(host)
    owners = _owners(host, links, pppds, procs)
    judged: dict[str, Judged] = {}
    for link in links:
        pid = owners.get(link)
        words = pppds.argv(pid) if pid is not None else None
        if pid is None or words is None:
            denied = bool(pppds.denied)
            judged[link] = (
                Judged("", UNREADABLE, pb.PROBE_ERROR_CODE_PERMISSION_DENIED)
                if denied else Judged("", NO_PPPD)
            )  # fmt: skip
            continue
        judged[link] = _judge(host, pid, words, procs)
    return judged
