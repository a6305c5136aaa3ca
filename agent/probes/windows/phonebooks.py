"""The RAS phonebooks Windows dials its PPP connections from, read to tell a VPN's PPP adapter
from a PPPoE dial-up's (agent/probes/windows/vpn_adapters.py, "PPP adapter").

A connection made for all users is in %ProgramData%'s phonebook, one made for oneself in the
user's own (%APPDATA%, under each home folder): the agent, a service, reads both. A phonebook
that is missing holds no entry; one that cannot be read is passed over, and the adapter's name
decides as where none exists, so an unreadable phonebook never makes a link a VPN.
"""

from __future__ import annotations

from devposture.agent.host import Host, HostError
from devposture.agent.parsers.windows.phonebook import parse_phonebook
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes.windows.vpn_adapters import Phonebook

# %ProgramData% on the system drive, where Windows keeps it unless an image moved it. Not read
# from the machine: the host layer offers no environment (%ProgramData%, %ALLUSERSPROFILE%) nor
# known folder (FOLDERID_ProgramData); one would need a Host method, live, recorded and replayed.
ALL_USERS = "C:/ProgramData/Microsoft/Network/Connections/Pbk/rasphone.pbk"
PER_USER = "AppData/Roaming/Microsoft/Network/Connections/Pbk/rasphone.pbk"  # under a home
_LIMIT = 1 << 20  # a phonebook of a few hundred entries is a few hundred KiB


def read_phonebooks(host: Host) -> Phonebook:
    """The types of the entries of every phonebook that could be read, by lower-cased name."""
    found: dict[str, set[str]] = {}
    encoding = host.host_info().console_encoding
    for path in (ALL_USERS, *(f"{home}/{PER_USER}" for home in host.home_dirs())):
        try:
            if not host.exists(path):
                continue
            text = decode_output(host.read_bytes(path, _LIMIT), encoding)
        except HostError:
            continue
        for name, kind in parse_phonebook(text).items():
            found.setdefault(name, set()).add(kind)
    return {name: frozenset(kinds) for name, kinds in found.items()}
