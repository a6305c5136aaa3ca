"""The agent's launchd daemon: /Library/LaunchDaemons/com.devposture.agent.plist.

    python3 installers/macos/launchd.py --out com.devposture.agent.plist

launchd starts `devposture-agent run` as root at boot (RunAtLoad) and again whenever it ends
(KeepAlive), at most once a minute (ThrottleInterval 60: a program that fails at once does not
spin). On stop it sends SIGTERM and waits 90 s (ExitTimeOut) before SIGKILL, so a collection
under way finishes: the systemd unit's stop timeout. The agent writes its own rotated log
(/Library/Logs/devposture/agent.log); StandardErrorPath catches only what escapes it (a crash
before logging starts). ProcessType Background: macOS may give it less CPU and I/O when the
person at the Mac needs them.
"""

from __future__ import annotations

import argparse
import plistlib
import sys
from pathlib import Path

LABEL = "com.devposture.agent"
PLIST = f"/Library/LaunchDaemons/{LABEL}.plist"
PROGRAM = "/opt/devposture-agent/bin/devposture-agent"
STDERR_LOG = "/Library/Logs/devposture/agent.stderr.log"
EXIT_TIMEOUT = 90
THROTTLE = 60


def daemon() -> dict[str, object]:
    """The plist's keys."""
    return {
        "Label": LABEL,
        "ProgramArguments": [PROGRAM, "run"],
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": THROTTLE,
        "ExitTimeOut": EXIT_TIMEOUT,
        "ProcessType": "Background",
        "StandardErrorPath": STDERR_LOG,
    }


def render() -> bytes:
    """The plist file (XML, keys sorted: the same bytes every time)."""
    return plistlib.dumps(daemon(), fmt=plistlib.FMT_XML, sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_bytes(render())
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
