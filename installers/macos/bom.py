"""A Bom ("bill of materials"), the list of every path a package installs with its mode, owner,
size and checksum. The macOS installer reads it to know what the Payload holds and records it
as the package's receipt (`pkgutil --files`, `lsbom`).

No Debian package writes one, so this is our own writer of the public description of the
format (bomutils' notes, stuckliste's format reference, Fleet's packager; no code taken from
any). All numbers are big-endian.

    header (512 bytes)   "BOMStore", version 1, the number of non-null blocks, where the
                         block table and the named blocks ("vars") are
    blocks               the data, each addressed by its index in the block table
    vars                 names -> block index: BomInfo, Paths, HLIndex, VIndex, Size64
    block table          (offset, length) per index, index 0 the null block; then an
                         empty free list

Paths is a B-tree of 4096-byte pages: leaves of at most 256 (key, value) pairs, and above them
one branch naming each leaf and its last value; every node fills its page, zero-padded. A key
is (path id, index of the path's metadata); a value is (parent's path id, name). Path ids are
given breadth first from "." (id 1, parent 0), siblings by name, so the leaves are in key
order and in (parent, name) order alike. The metadata of a path: type (1 file, 2 folder,
3 link), 1, flags 0x000F (full metadata, not an executable with per-architecture sums), mode,
uid, gid, mtime, size, 1, then a file's POSIX cksum, or a link's cksum of its target, the
target's length with its NUL and the target; every metadata block ends with 8 zero bytes.
HLIndex (hard links) and Size64 (files of 4 GiB or more) are empty trees of 4096-byte pages,
VIndex (1, a tree of 128-byte pages, 0, 0) an empty one; BomInfo holds 1, the number of paths
plus one, and one entry (CPU type 0, 0, the files' total size, 0).

These details were checked against a Bom that Apple's mkbom wrote (a three-path sample
package kept in a public repository's tests): same metadata blocks byte for byte in layout,
same flags, page-sized nodes, the same BomInfo, VIndex and empty trees. What differs is only
where blocks lie in the file and the spare block-table and free-list entries Apple leaves for
editing in place, which a reader follows by index and never needs.
"""

from __future__ import annotations

import struct
from collections import deque
from pathlib import Path

from pkg_payload import Entry
from posix_cksum import cksum

HEADER_SIZE = 512
LEAF_ENTRIES = 256
PAGE = 4096
BRANCH_ENTRIES = (PAGE - 12) // 8
TYPES = {"file": 1, "dir": 2, "symlink": 3}
FULL_METADATA = 0x000F
END = b"\0" * 8
VARS = ("BomInfo", "Paths", "HLIndex", "VIndex", "Size64")


class _Blocks:
    """The block store being built; index 0 is the null block."""

    def __init__(self) -> None:
        self.data: list[bytes] = [b""]

    def add(self, data: bytes) -> int:
        self.data.append(data)
        return len(self.data) - 1


def _tree(child: int, page: int, count: int) -> bytes:
    return b"tree" + struct.pack(">IIIIB", 1, child, page, count, 0)


def _node(*, leaf: bool, pairs: list[tuple[int, int]], page: int = PAGE, forward: int = 0,
          backward: int = 0) -> bytes:  # fmt: skip
    """A tree node, padded to its page."""
    head = struct.pack(">HHII", 1 if leaf else 0, len(pairs), forward, backward)
    node = head + b"".join(struct.pack(">II", key, value) for key, value in pairs)
    assert len(node) <= page
    return node.ljust(page, b"\0")


def metadata(entry: Entry, mtime: int) -> bytes:
    """A path's metadata block."""
    size = entry.size
    if size >= 1 << 32:
        raise ValueError(f"{entry.path} is 4 GiB or more, which this Bom writer does not record")
    common = struct.pack(">BBHHIIIIB", TYPES[entry.kind], 1, FULL_METADATA, entry.st_mode,
                         0, 0, mtime, size, 1)  # fmt: skip
    if entry.kind == "dir":
        return common + END
    summed = struct.pack(">I", cksum(entry.chunks()))
    if entry.kind == "file":
        return common + summed + END
    target = entry.target.encode() + b"\0"
    return common + summed + struct.pack(">I", len(target)) + target + END


def breadth_first(entries: list[Entry]) -> list[Entry]:
    """The root first, then its children by name, then theirs: the order of the path ids."""
    children: dict[str, list[Entry]] = {}
    root = None
    for entry in entries:
        if entry.path == "":
            root = entry
        else:
            children.setdefault(entry.parent, []).append(entry)
    if root is None:
        raise ValueError("the payload has no root folder")
    order: list[Entry] = []
    queue = deque([root])
    while queue:
        entry = queue.popleft()
        order.append(entry)
        queue.extend(sorted(children.get(entry.path, []), key=lambda e: e.name.encode()))
    if len(order) != len(entries):
        raise ValueError("some payload entries have no parent folder")
    return order


def _paths(blocks: _Blocks, order: list[Entry], mtime: int) -> int:
    """The Paths tree's blocks; returns the index of its "tree" block."""
    ids = {entry.path: number for number, entry in enumerate(order, start=1)}
    pairs: list[tuple[int, int]] = []
    for entry in order:
        info = blocks.add(metadata(entry, mtime))
        key = blocks.add(struct.pack(">II", ids[entry.path], info))
        parent = ids[entry.parent] if entry.path else 0
        value = blocks.add(struct.pack(">I", parent) + entry.name.encode() + b"\0")
        pairs.append((key, value))
    groups = [pairs[at : at + LEAF_ENTRIES] for at in range(0, len(pairs), LEAF_ENTRIES)]
    if len(groups) > BRANCH_ENTRIES:
        raise ValueError(f"{len(pairs)} paths are more than one branch page of leaves holds")
    leaves = [blocks.add(b"") for _ in groups]  # their indices first: leaves link each other
    for number, (leaf, group) in enumerate(zip(leaves, groups, strict=True)):
        blocks.data[leaf] = _node(
            leaf=True, pairs=group,
            forward=leaves[number + 1] if number + 1 < len(leaves) else 0,
            backward=leaves[number - 1] if number else 0,
        )  # fmt: skip
    if len(leaves) == 1:
        top = leaves[0]
    else:
        top = blocks.add(_node(leaf=False, pairs=[
            (leaf, group[-1][1]) for leaf, group in zip(leaves, groups, strict=True)
        ]))  # fmt: skip
    return blocks.add(_tree(top, PAGE, len(pairs)))


def render(entries: list[Entry], *, mtime: int) -> bytes:
    """The Bom of `entries` (a payload, "." included)."""
    order = breadth_first(entries)
    blocks = _Blocks()
    total = sum(entry.size for entry in order if entry.kind != "dir") & 0xFFFFFFFF
    named = {
        "BomInfo": blocks.add(struct.pack(">IIIIIII", 1, len(order) + 1, 1, 0, 0, total, 0)),
        "Paths": _paths(blocks, order, mtime),
        "HLIndex": blocks.add(_tree(blocks.add(_node(leaf=True, pairs=[])), PAGE, 0)),
    }
    virtual = blocks.add(_tree(blocks.add(_node(leaf=True, pairs=[], page=128)), 128, 0))
    named["VIndex"] = blocks.add(struct.pack(">IIIB", 1, virtual, 0, 0))
    named["Size64"] = blocks.add(_tree(blocks.add(_node(leaf=True, pairs=[])), PAGE, 0))

    body = bytearray()
    table = [struct.pack(">II", 0, 0)]
    for data in blocks.data[1:]:
        table.append(struct.pack(">II", HEADER_SIZE + len(body), len(data)))
        body += data
    variables = struct.pack(">I", len(VARS)) + b"".join(
        struct.pack(">IB", named[name], len(name)) + name.encode() for name in VARS
    )
    index = (
        struct.pack(">I", len(table)) + b"".join(table) + struct.pack(">I", 0) + b"\0" * 16
    )  # an empty free list, two spare pointers
    vars_at = HEADER_SIZE + len(body)
    index_at = vars_at + len(variables)
    header = b"BOMStore" + struct.pack(">IIIIII", 1, len(blocks.data) - 1, index_at, len(index),
                                       vars_at, len(variables))  # fmt: skip
    return header.ljust(HEADER_SIZE, b"\0") + bytes(body) + variables + index


def write(entries: list[Entry], out: Path, *, mtime: int) -> None:
    out.write_bytes(render(entries, mtime=mtime))
