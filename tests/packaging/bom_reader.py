"""Reads a Bom (a macOS package's bill of materials) back, for the .pkg tests.

Written from the published description of the format (bomutils' bom.h notes, stuckliste's
"BOM file format reference" and "receipt file format reference"), independently of
installers/macos/bom.py, which it checks: it imports nothing from there. No Debian package
reads a Bom (Apple's lsbom is macOS only), so this is the reader the tests have. It is strict:
anything it does not expect (a wrong magic or version, a block outside the file, a metadata
block that does not end in Apple's 8 zero bytes, a tree whose count disagrees with its
leaves, a leaf chain that skips a leaf) is an error, not a guess.

Layout (big-endian): a 512-byte header ("BOMStore", version 1, the number of non-null blocks,
the block table's offset and length, the named blocks' offset and length); the block table
(a count, then an (offset, length) per block index, index 0 null); the named blocks (a count,
then per name its block index, a length byte and the name). "Paths" is a tree: "tree",
version, the root node's block, the page size, the number of paths, a byte; a node is (leaf
flag, count, next, previous) then (key, value) block pairs; in a branch each key is a child
node; in a leaf a key is (path id, metadata block), a value (parent id, NUL-terminated name).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

TYPES = {1: "file", 2: "dir", 3: "symlink", 4: "device"}


class BomFormatError(ValueError):
    pass


@dataclass(frozen=True)
class BomPath:
    """One path of the Bom, named as cpio names it ("." or "./a/b")."""

    path: str
    id: int
    parent: int
    kind: str
    flags: int
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int
    checksum: int | None  # files and links
    target: str | None  # links


@dataclass
class Bom:
    blocks: list[tuple[int, int]]
    named: dict[str, int]
    paths: dict[str, BomPath] = field(default_factory=dict)
    info_paths: int = 0
    info_entries: list[tuple[int, int, int, int]] = field(default_factory=list)
    leaves: int = 0
    tree_pages: dict[str, int] = field(default_factory=dict)
    vindex: tuple[int, int, int] = (0, 0, 0)  # version, a word, a byte (tree index left out)


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", data, at)[0])


def read(data: bytes) -> Bom:
    if data[:8] != b"BOMStore":
        raise BomFormatError(f"magic {data[:8]!r}, not BOMStore")
    version, non_null, index_at, index_len, vars_at, vars_len = struct.unpack_from(">6I", data, 8)
    if version != 1:
        raise BomFormatError(f"version {version}")
    if index_at + index_len > len(data) or vars_at + vars_len > len(data):
        raise BomFormatError("the block table or the named blocks lie outside the file")
    count = _u32(data, index_at)
    if 4 + count * 8 > index_len:
        raise BomFormatError(f"{count} blocks do not fit the block table's {index_len} bytes")
    blocks = [struct.unpack_from(">II", data, index_at + 4 + 8 * n) for n in range(count)]
    if blocks[0] != (0, 0):
        raise BomFormatError("block 0 is not the null block")
    if sum(1 for b in blocks[1:] if b != (0, 0)) != non_null:
        raise BomFormatError("the header's count of non-null blocks is wrong")
    for offset, length in blocks:
        if offset + length > len(data):
            raise BomFormatError(f"block at {offset}+{length} lies outside the file")
    named: dict[str, int] = {}
    at = vars_at + 4
    for _ in range(_u32(data, vars_at)):
        index, size = struct.unpack_from(">IB", data, at)
        named[data[at + 5 : at + 5 + size].decode()] = index
        at += 5 + size
    if at != vars_at + vars_len:
        raise BomFormatError("the named blocks' length disagrees with their contents")
    bom = Bom(blocks=[(int(o), int(n)) for o, n in blocks], named=named)

    def block(index: int) -> bytes:
        if not 0 < index < len(bom.blocks):
            raise BomFormatError(f"block index {index} out of range")
        offset, length = bom.blocks[index]
        return data[offset : offset + length]

    def tree(name: str, index: int) -> tuple[list[tuple[int, int]], int]:
        """(key, value) pairs of the tree at `index`, and its number of leaves."""
        head = block(index)
        if head[:4] != b"tree" or len(head) != 21:
            raise BomFormatError(f"{name}: not a tree block")
        tree_version, root, page, entries, _unknown = struct.unpack(">IIIIB", head[4:])
        if tree_version != 1:
            raise BomFormatError(f"{name}: tree version {tree_version}")
        bom.tree_pages[name] = page
        leaves: list[int] = []

        def walk(node_index: int) -> None:
            node = block(node_index)
            is_leaf, n, _forward, _backward = struct.unpack_from(">HHII", node)
            # Apple's mkbom fills each node's page; bomutils writes only what it holds.
            if len(node) not in (12 + 8 * n, page) or any(node[12 + 8 * n :]):
                raise BomFormatError(f"{name}: node {node_index} has a wrong size")
            pairs = [struct.unpack_from(">II", node, 12 + 8 * k) for k in range(n)]
            if is_leaf:
                leaves.append(node_index)
                return
            for child, _last in pairs:
                walk(child)

        walk(root)
        pairs: list[tuple[int, int]] = []
        for number, leaf in enumerate(leaves):
            node = block(leaf)
            _flag, n, forward, backward = struct.unpack_from(">HHII", node)
            expected_forward = leaves[number + 1] if number + 1 < len(leaves) else 0
            expected_backward = leaves[number - 1] if number else 0
            if (forward, backward) != (expected_forward, expected_backward):
                raise BomFormatError(f"{name}: leaf {leaf} is not linked to its neighbours")
            pairs += [struct.unpack_from(">II", node, 12 + 8 * k) for k in range(n)]
        if len(pairs) != entries:
            raise BomFormatError(f"{name}: the tree says {entries} entries, its leaves hold"
                                 f" {len(pairs)}")  # fmt: skip
        return pairs, len(leaves)

    for name in ("BomInfo", "Paths", "HLIndex", "VIndex", "Size64"):
        if name not in named:
            raise BomFormatError(f"no {name} block")
    info = block(named["BomInfo"])
    info_version, bom.info_paths, n_entries = struct.unpack_from(">III", info)
    if info_version != 1 or len(info) != 12 + 16 * n_entries:
        raise BomFormatError("BomInfo: wrong version or size")
    bom.info_entries = [struct.unpack_from(">IIII", info, 12 + 16 * k) for k in range(n_entries)]
    for name in ("HLIndex", "Size64"):
        if tree(name, named[name])[0]:
            raise BomFormatError(f"{name} is not empty")
    vindex = block(named["VIndex"])
    if len(vindex) != 13 or _u32(vindex, 0) != 1:
        raise BomFormatError("VIndex: wrong size or version")
    tree("VIndex tree", _u32(vindex, 4))
    bom.vindex = (_u32(vindex, 0), _u32(vindex, 8), vindex[12])

    pairs, bom.leaves = tree("Paths", named["Paths"])
    names: dict[int, tuple[int, str]] = {}
    metadata: dict[int, bytes] = {}
    for key, value in pairs:
        path_id, info_index = struct.unpack(">II", block(key))
        entry = block(value)
        parent = _u32(entry, 0)
        if not entry.endswith(b"\0") or b"\0" in entry[4:-1]:
            raise BomFormatError(f"path {path_id}: the name is not one NUL-terminated text")
        if path_id in names:
            raise BomFormatError(f"path id {path_id} twice")
        names[path_id] = (parent, entry[4:-1].decode())
        metadata[path_id] = block(info_index)

    def full(path_id: int) -> str:
        parts: list[str] = []
        seen: set[int] = set()
        while path_id:
            if path_id in seen or path_id not in names:
                raise BomFormatError(f"path {path_id}: its parents loop or are missing")
            seen.add(path_id)
            parent, name = names[path_id]
            parts.append(name)
            path_id = parent
        return "/".join(reversed(parts))

    for path_id, (parent, _name) in names.items():
        bom.paths[full(path_id)] = _metadata(full(path_id), path_id, parent, metadata[path_id])
    return bom


def _metadata(path: str, path_id: int, parent: int, data: bytes) -> BomPath:
    kind_code, one, flags, mode, uid, gid, mtime, size, one_again = struct.unpack_from(
        ">BBHHIIIIB", data)  # fmt: skip
    if one != 1 or one_again != 1 or kind_code not in TYPES:
        raise BomFormatError(f"{path}: unexpected metadata header")
    at = 23
    checksum: int | None = None
    target: str | None = None
    kind = TYPES[kind_code]
    if kind in ("file", "symlink"):
        checksum = _u32(data, at)
        at += 4
    if kind == "symlink":
        length = _u32(data, at)
        raw = data[at + 4 : at + 4 + length]
        if not raw.endswith(b"\0"):
            raise BomFormatError(f"{path}: link target not NUL-terminated")
        target = raw[:-1].decode()
        at += 4 + length
    if data[at:] != b"\0" * 8:
        raise BomFormatError(f"{path}: the metadata block does not end with 8 zero bytes")
    return BomPath(path=path, id=path_id, parent=parent, kind=kind, flags=flags, mode=mode,
                   uid=uid, gid=gid, mtime=mtime, size=size, checksum=checksum,
                   target=target)  # fmt: skip
