"""Device ids typed as prefixes: `device show 3f2a9c` for `3f2a9c…` (32 hex digits), when
exactly one device's id starts so — the way git takes a commit's prefix.

Nobody types 32 hex digits correctly; a cut table cell (`3f2a9c1d…`) is typed back as is.
A prefix that fits several devices is refused, naming the candidates, never guessed: revoking
the wrong laptop is worse than typing two more digits. One that fits none is passed on as
typed, so that the command itself says there is no such device (and the audit log keeps
that refusal, as it keeps every command's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from devposture.collector.admin.commands import CommandError
from devposture.policy.cli_messages import Bracketed, Said, enumeration, said

FULL_ID = re.compile(r"[0-9a-f]{32}")
# The command arguments that name devices (`waiver add --device` may repeat: one a line).
DEVICE_ARGUMENTS = ("device_id", "device")
SHOWN = 10  # candidates named in the error at most

# Every device: (id, hostname). Read only when a prefix was typed.
Devices = Callable[[], Iterable[tuple[str, str]]]


def needs_lookup(arguments: Mapping[str, str]) -> bool:
    """Whether any device argument is not a full id."""
    return any(
        not FULL_ID.fullmatch(value.strip())
        for name in DEVICE_ARGUMENTS
        for value in arguments.get(name, "").splitlines()
        if value.strip()
    )


def complete(arguments: Mapping[str, str], devices: Devices) -> dict[str, str]:
    """`arguments` with each device prefix replaced by the one id it starts; an error naming
    the candidates when a prefix fits several devices or none."""
    if not needs_lookup(arguments):
        return dict(arguments)
    known = list(devices())
    completed = dict(arguments)
    for name in DEVICE_ARGUMENTS:
        if name in arguments:
            completed[name] = "\n".join(
                _one(v.strip(), known) for v in arguments[name].splitlines() if v.strip()
            )
    return completed


def _one(typed: str, known: list[tuple[str, str]]) -> str:
    if FULL_ID.fullmatch(typed):
        return typed
    prefix = typed.lower()
    found = [(device, host) for device, host in known if device.startswith(prefix)]
    if len(found) <= 1 or any(device == prefix for device, _ in found):
        return found[0][0] if len(found) == 1 else typed
    listed = enumeration(Bracketed.of(device, host or "-") for device, host in found[:SHOWN])
    named: str | Said = listed
    if len(found) > SHOWN:
        named = said("{named} and {more} more", named=listed, more=len(found) - SHOWN)
    raise CommandError(
        "{typed} is the start of {count} device ids: {named}. Type more of the id to tell them"
        " apart.",
        typed=repr(typed), count=len(found), named=named,
    )
