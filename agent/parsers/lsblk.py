"""`lsblk -J -o NAME,TYPE,FSTYPE,FSVER,MOUNTPOINTS,PKNAME` (util-linux) into volumes.

A mounted filesystem is encrypted when it sits on a dm-crypt mapping: lsblk shows the mapping
as TYPE "crypt" (the kernel says so, no udev needed) and, when udev has probed it, its parent
as FSTYPE "crypto_LUKS" with FSVER "1"/"2". Without TYPE (e.g. `lsblk -f -J`) only FSTYPE is
left, and a chain whose FSTYPEs are all unknown cannot be judged: encrypted stays unset.
Older lsblk (< 2.37) prints a single "mountpoint" instead of the "mountpoints" list.

Each volume comes with its device's TYPE and FSTYPE (`LsblkVolume`): the report has room for
256 volumes, and a loop device or a squashfs image (a snap) is what goes first when a computer
has more (agent/probes/volume_room.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

_SKIP_MOUNTS = {"[SWAP]"}


def _mounts(dev: dict[str, Any]) -> list[str]:
    if "mountpoints" in dev:
        raw = dev["mountpoints"] or []
        if not isinstance(raw, list):
            raise ParseError("lsblk: mountpoints is not a list")
    else:
        raw = [dev.get("mountpoint")]
    return [m for m in raw if isinstance(m, str) and m and m not in _SKIP_MOUNTS]


def _walk(
    devices: list[Any], ancestors: tuple[dict[str, Any], ...]
) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    for dev in devices:
        if not isinstance(dev, dict) or not isinstance(dev.get("name"), str):
            raise ParseError("lsblk: a block device without a name")
        yield dev, ancestors
        children = dev.get("children") or []
        if not isinstance(children, list):
            raise ParseError("lsblk: children is not a list")
        yield from _walk(children, (*ancestors, dev))


def _judge(chain: tuple[dict[str, Any], ...]) -> tuple[bool | None, str]:
    """(encrypted, method) for a device given itself and its ancestors (outermost first)."""
    luks = [d for d in chain if d.get("fstype") == "crypto_LUKS"]
    crypt = [d for d in chain if d.get("type") == "crypt"]
    if luks:
        version = luks[-1].get("fsver")
        return True, f"LUKS{version}" if version else "LUKS"
    if crypt:
        return True, "dm-crypt"
    if all("type" in d for d in chain):
        return False, ""
    if any(d.get("fstype") for d in chain):
        # udev probed this chain and saw no crypto_LUKS anywhere on it.
        return False, ""
    return None, ""


@dataclass(frozen=True)
class LsblkVolume:
    """One volume and what its device is: lsblk's TYPE ("loop", "part", "crypt"; "" when not
    asked) and FSTYPE ("squashfs", "ext4"; "" when udev has not probed it)."""

    volume: pb.EncryptedVolume
    dev_type: str
    fstype: str


def parse_lsblk_json(text: str) -> list[pb.EncryptedVolume]:
    """One volume per mount point (a btrfs mounted at "/" and "/home" gives two), plus every
    unmounted LUKS container with nothing opened on it (a locked encrypted volume)."""
    return [row.volume for row in parse_lsblk_rows(text)]


def parse_lsblk_rows(text: str) -> list[LsblkVolume]:
    """The volumes of `parse_lsblk_json`, each with its device's TYPE and FSTYPE."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("lsblk: output is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("blockdevices"), list):
        raise ParseError("lsblk: no blockdevices list")
    volumes: list[LsblkVolume] = []
    for dev, ancestors in _walk(doc["blockdevices"], ()):
        chain = (*ancestors, dev)
        encrypted, method = _judge(chain)
        name = dev["name"]
        kind = (_text(dev.get("type")), _text(dev.get("fstype")))
        mounts = _mounts(dev)
        for mount in mounts:
            vol = pb.EncryptedVolume(mount_point=mount, device=name, method=method)
            if encrypted is not None:
                vol.encrypted = encrypted
            volumes.append(LsblkVolume(vol, *kind))
        locked = dev.get("fstype") == "crypto_LUKS" and not dev.get("children") and not mounts
        if locked:
            locked_volume = pb.EncryptedVolume(device=name, encrypted=True, method=method)
            volumes.append(LsblkVolume(locked_volume, *kind))
    return volumes


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
