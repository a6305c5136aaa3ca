"""`socketfilterfw --getglobalstate`: the application firewall's global state.

Real wordings (one line, possibly followed by the answers to other --get flags):
    Firewall is enabled. (State = 1)
    Firewall is disabled. (State = 0)
    Firewall is enabled. (State = 2)                                    (older macOS)
    Firewall is blocking all non-essential incoming connections. (State = 2)   (macOS 15)
State 2 is "block all incoming connections": the firewall is on, at its strictest (field
notes). The number decides; the sentence is only checked to be a firewall state line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_STATE = re.compile(r"^Firewall .*\(State = (?P<state>\d+)\)\s*$")


@dataclass(frozen=True)
class GlobalState:
    state: int  # 0 off, 1 on, 2 on and blocking all non-essential incoming connections

    @property
    def enabled(self) -> bool:
        return self.state in (1, 2)

    @property
    def block_all(self) -> bool:
        return self.state == 2


def parse_global_state(text: str) -> GlobalState:
    for line in text.splitlines():
        match = _STATE.match(line.strip())
        if match:
            state = int(match["state"])
            if state not in (0, 1, 2):
                raise ParseError("socketfilterfw: global state is not 0, 1 or 2")
            return GlobalState(state)
    raise ParseError("socketfilterfw: no 'Firewall ... (State = N)' line")
