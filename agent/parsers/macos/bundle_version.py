"""`defaults read <App>.app/Contents/Info.plist CFBundleShortVersionString`: an app's version.

For one key of a plist, defaults prints the bare value and a newline ("4.1.5" for WeChat
4.1.5.26: the Mac app's short version has three parts, its build number is CFBundleVersion,
"32281"; sunnyyoung/WeChatTweak#895). When the key is absent, defaults exits 1 and says on
stderr "The domain/default pair of (<file>, <key>) does not exist" (WeChatTweak#928): the app
is there, its version is unknown.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.app_versions import dotted_version
from devposture.agent.parsers.errors import ParseError

_PAIR_MISSING = re.compile(r"The domain/default pair of \(.+\) does not exist")


def parse_short_version(text: str) -> str:
    """The dotted version defaults printed. Raises ParseError on anything else."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) != 1:
        raise ParseError("defaults: expected one value on one line")
    return dotted_version(lines[0])


def key_missing(stderr: str) -> bool:
    return _PAIR_MISSING.search(stderr) is not None
