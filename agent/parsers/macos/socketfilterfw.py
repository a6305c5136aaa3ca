"""`socketfilterfw --getglobalstate`: the application firewall's global state.

Real wordings (one line, possibly followed by the answers to other --get flags):
    Firewall is enabled. (State = 1)
    Firewall is disabled. (State = 0)
    Firewall is enabled. (State = 2)                                    (older macOS)
    Firewall is blocking all non-essential incoming connections. (State = 2)   (macOS 15)
The number says on (1, 2) or off (0). Whether State 2 blocks all incoming connections is not
certain from the number alone: m-cli's recording shows it after block-all was set, while
kolide/launcher's records "(State = 2)" beside "Firewall has block all state set to
disabled." with stealth mode on. So block-all is told by words: macOS 15's "blocking all
non-essential incoming connections", or a `--getblockall` answer printed with it ("block all
state set to enabled/disabled"); State 2 in the older wording alone leaves it unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_STATE = re.compile(r"^Firewall .*\(State = (?P<state>\d+)\)\s*$")
_BLOCK_ALL = re.compile(r"block all state set to (?P<value>enabled|disabled)", re.IGNORECASE)
_BLOCKING_ALL = "blocking all non-essential incoming connections"


@dataclass(frozen=True)
class GlobalState:
    state: int  # 0 off, 1 on, 2 on (see the module's docstring)
    # Whether all incoming connections are blocked; None when the output does not say.
    block_all: bool | None = False

    @property
    def enabled(self) -> bool:
        return self.state in (1, 2)


def parse_global_state(text: str) -> GlobalState:
    lines = [line.strip() for line in text.splitlines()]
    for line in lines:
        match = _STATE.match(line)
        if match:
            state = int(match["state"])
            if state not in (0, 1, 2):
                raise ParseError("socketfilterfw: global state is not 0, 1 or 2")
            return GlobalState(state, _block_all(state, line, lines))
    raise ParseError("socketfilterfw: no 'Firewall ... (State = N)' line")


def _block_all(state: int, line: str, lines: list[str]) -> bool | None:
    if state == 0:
        return False
    if _BLOCKING_ALL in line.lower():
        return True
    told = next((m["value"].lower() for m in map(_BLOCK_ALL.search, lines) if m), None)
    if told is not None:
        return told == "enabled"
    return None if state == 2 else False
