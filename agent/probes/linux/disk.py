"""Disk encryption on Linux: lsblk's block-device tree, with / from /proc/self/mounts.

lsblk shows dm-crypt mappings (TYPE crypt) and LUKS containers (FSTYPE crypto_LUKS). The root
file system is always reported: when lsblk does not list it (an overlay in a container, a
network root), it is added from /proc/self/mounts with "encrypted" unset, because nothing
seen says either way. lsblk older than 2.37 lacks MOUNTPOINTS; it is retried with MOUNTPOINT.
"""

from __future__ import annotations

from devposture.agent.host import CommandFailedError, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.lsblk import parse_lsblk_json
from devposture.agent.parsers.mounts import parse_mounts
from devposture.agent.probes.commands import LSBLK, LSBLK_OLD
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.v1 import devposture_pb2 as pb

_MOUNTS = "/proc/self/mounts"
_MOUNTS_LIMIT = 1024 * 1024


def _lsblk(ctx: ProbeContext) -> str:
    timeout = ctx.config.command_timeout
    try:
        return ctx.host.run(LSBLK, timeout).stdout_text()
    except CommandFailedError as exc:
        if b"unknown column" not in exc.stderr:
            raise
    return ctx.host.run(LSBLK_OLD, timeout).stdout_text()


def probe(ctx: ProbeContext) -> FactOutcome:
    volumes = parse_lsblk_json(_lsblk(ctx))
    fact = pb.DiskEncryptionFact(volumes=volumes)
    errors: list[pb.ProbeError] = []
    if not any(v.mount_point == "/" for v in volumes):
        try:
            text = ctx.host.read_bytes(_MOUNTS, _MOUNTS_LIMIT).decode("utf-8", "replace")
            root = [m for m in parse_mounts(text) if m.mount_point == "/"]
            if root:
                fact.volumes.add(mount_point="/", device=root[-1].device)
        except (HostError, ParseError) as exc:
            errors.append(source_error(pb.FACT_DISK_ENCRYPTION, "mounts", exc))
    return FactOutcome(fact, errors)
