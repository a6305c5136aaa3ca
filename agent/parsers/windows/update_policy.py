"""Whether Windows installs updates by itself, from the Automatic Updates policy key
HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU.

The key exists only when someone set the policy (Group Policy, Intune, a registry edit). Without
it Windows 10 and 11 use their default, which is to download and install updates automatically
(users can only pause them), so a missing key means automatic updates are on. With the key:
NoAutoUpdate=1 turns them off; AUOptions says how they run (Microsoft's "Configure Automatic
Updates" policy): 2 notify before download, 3 download and notify to install, 4 download and
install on a schedule, 5 let the local administrator choose, 7 download, notify to install and
to restart. Only 4 installs without a person, so only 4 (or the policy not choosing an option)
counts as automatic; 5 depends on a setting this key does not hold, so it is unknown.
"""

from __future__ import annotations

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.reg_query import RegistryValues, dword

_NEEDS_A_PERSON = frozenset({2, 3, 7})


def automatic_updates(values: RegistryValues | None) -> bool | None:
    """True/False/None (unknown) from the AU key's values; None for `values` means the key
    does not exist."""
    if values is None:
        return True
    if dword(values, "NoAutoUpdate") == 1:
        return False
    option = dword(values, "AUOptions")
    if option is None or option == 4:
        return True
    if option in _NEEDS_A_PERSON:
        return False
    if option == 5:
        return None
    raise ParseError("AUOptions: value not defined by the policy")
