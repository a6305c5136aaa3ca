"""A report body cut into the parts a fleet repeats, and put back together byte for byte.

Why: an hourly report of a healthy device repeats its facts (the antivirus, the firewall, the
updates, the chat apps and backups), and a whole fleet repeats a day's facts. Stored and
exported whole, a quarter of a 10,000-device fleet is hundreds of gigabytes of the same
kilobytes. Cut at the body's top-level fields, each repeated fact is kept once, addressed by
its SHA-256 (`store/fact_parts.py`), and each report keeps only what is its own (its id, its
times, its delivery figures) and where each part goes. (The audit bundle keeps whole bodies:
deflate already stores a repeated fact once within its window; docs/audit-evidence.md.)

The cut is made on the protobuf wire format of the bytes as the agent sent them, not on a
parsed message, so putting the pieces back gives exactly those bytes and the report's
SHA-256 in the evidence chain is unchanged. A run of consecutive fields with the same
number (a repeated field) is one part. Fields shorter than `PART_MIN` stay inline: a part
costs a 36-byte reference and a lookup. Field 1 (the report id) always stays inline, so a
stored report's own bytes are never empty (an empty body means pruned, schema 12).

Pure functions, no SQL: the store (`store/fact_parts.py`) cuts and puts back with them.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# A top-level field run at least this long is kept as a part: a reference costs 36 bytes. The
# device id (34 bytes), the times and the delivery figures stay inline, and the report id
# always does.
PART_MIN = 40
DIGEST = 32
# A reference in a stored recipe: where the part goes in the whole body (4 bytes) and its
# SHA-256.
_REF_BYTES = 4 + DIGEST

Ref = tuple[int, bytes]  # (offset in the whole body, SHA-256 of the part)


class NotSplittable(ValueError):
    """The bytes are not a protobuf message this module can walk (a group, a truncated
    field): the body is kept whole."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at `i`, and the offset after it."""
    value = shift = 0
    while True:
        if i >= len(data):
            raise NotSplittable("a varint runs past the end")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise NotSplittable("a varint longer than 10 bytes")


def varint_bytes(value: int) -> bytes:
    """A non-negative `value` as a protobuf varint."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _two_byte(data: bytes, i: int, end: int) -> tuple[int, int]:
    """A varint at `i`: one or two bytes read here (every tag and nearly every length of a
    report), longer ones by `_varint`."""
    if i + 1 < end and data[i + 1] < 0x80:
        return (data[i] & 0x7F) | data[i + 1] << 7, i + 2
    return _varint(data, i)


def field_runs(body: bytes) -> list[tuple[int, int, int]]:
    """(field number, start, end) of each run of consecutive top-level fields with one
    number, in the order they are in `body`. (On the ingest path for every report: written
    for speed, one- and two-byte varints read inline.)"""
    runs: list[tuple[int, int, int]] = []
    i, end = 0, len(body)
    number = run_start = -1
    while i < end:
        start = i
        tag = body[i]
        if tag < 0x80:  # a one-byte tag: fields 1-15
            i += 1
        else:
            tag, i = _two_byte(body, i, end)
        kind = tag & 7
        if kind == 2:
            length = body[i] if i < end else 0x80
            if length < 0x80:
                i += 1 + length
            else:
                length, i = _two_byte(body, i, end)
                i += length
        elif kind == 0:
            _, i = _varint(body, i)
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        else:
            raise NotSplittable(f"wire type {kind} (a group) at byte {start}")
        if i > end or tag < 8:
            raise NotSplittable(f"a field at byte {start} runs past the end")
        if tag >> 3 != number:
            if number >= 0:
                runs.append((number, run_start, start))
            number, run_start = tag >> 3, start
    if number >= 0:
        runs.append((number, run_start, end))
    return runs


def split(body: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The body's own bytes (inline) and its parts as (offset in the whole body, bytes), in
    order. A body that cannot be walked, or has no part, is all inline."""
    try:
        runs = field_runs(body)
    except NotSplittable:
        return body, []
    return split_runs(body, runs)


def split_runs(
    body: bytes, runs: list[tuple[int, int, int]]
) -> tuple[bytes, list[tuple[int, bytes]]]:
    """`split` of a body whose `field_runs` are `runs`."""
    own, parts = cut_runs(body, runs, 0, len(body))
    if not parts or not own:
        return body, []
    return own, parts


def cut_runs(
    body: bytes, runs: Sequence[tuple[int, int, int]], start: int, end: int
) -> tuple[bytes, list[tuple[int, bytes]]]:
    """`body[start:end]`, whose field runs are `runs`, less its parts (runs of PART_MIN bytes
    or more, but the report id's), and the parts as (offset in `body`, bytes)."""
    inline: list[bytes] = []
    parts: list[tuple[int, bytes]] = []
    at = start
    for number, s, e in runs:
        if e - s >= PART_MIN and number != 1:
            inline.append(body[at:s])
            parts.append((s, body[s:e]))
            at = e
    inline.append(body[at:end])
    return b"".join(inline), parts


def leading_fields(body: bytes) -> list[tuple[int, int]] | None:
    """(number, end) of each of the body's leading length-delimited fields numbered 1-4, in
    order: the report's id, device, agent and collection time, which a deterministic
    serialization writes first and which differ from one report of a device to the next.
    None where one's length is not one or two bytes, or runs past the end. (On the ingest
    path for every report, twice: the facts' key and the writer's cut.)"""
    fields: list[tuple[int, int]] = []
    i, end = 0, len(body)
    while i + 1 < end and 8 <= body[i] < 40 and body[i] & 7 == 2:
        first = body[i + 1]
        if first < 0x80:
            after = i + 2 + first
        elif i + 2 < end and body[i + 2] < 0x80:
            after = i + 3 + ((first & 0x7F) | body[i + 2] << 7)
        else:
            return None
        fields.append((body[i] >> 3, after))
        i = after
    return None if i > end else fields


def digest(part: bytes) -> bytes:
    return hashlib.sha256(part).digest()


# Digests of parts met lately (a part's bytes -> its SHA-256): looking a hundred bytes up in
# a dict costs a fifth of making a SHA-256 object for them, and a fleet repeats its parts.
# Used where every report is cut (the store's cut, and the fact sets of format 5).
DIGESTS_MOST = 20_000
_remembered: dict[bytes, bytes] = {}


def remembered_digest(part: bytes) -> bytes:
    """`digest(part)`, remembered for the parts met lately (at most DIGESTS_MOST)."""
    found = _remembered.get(part)
    if found is None:
        if len(_remembered) >= DIGESTS_MOST:
            _remembered.clear()
        found = _remembered[part] = hashlib.sha256(part).digest()
    return found


def pack(refs: Sequence[Ref]) -> bytes:
    """A recipe as stored: the offsets of its parts (4 bytes each, big-endian), then their
    digests, in order. The digests side by side are the key a reader works out a body's
    parts by once (`Bodies`): a fleet's reports of a day share their parts, not offsets."""
    return pack_parts([offset for offset, _ in refs], [d for _, d in refs])


def pack_parts(offsets: Sequence[int], digests: Sequence[bytes]) -> bytes:
    """`pack` of the offsets and digests side by side."""
    return struct.pack(f">{len(offsets)}I", *offsets) + b"".join(digests)


def recipe_flat(recipe: bytes) -> tuple[Any, ...]:
    """A stored recipe's offsets, then its digests, in order, by one struct call (a quarter's
    export reads a million recipes: the format's text made once per count, not per recipe).
    ValueError where its bytes are not whole references."""
    count, extra = divmod(len(recipe), _REF_BYTES)
    if extra:
        raise ValueError(f"a recipe of {len(recipe)} bytes is not whole references")
    return _flat(count).unpack(recipe)


@functools.cache
def _flat(count: int) -> struct.Struct:
    return struct.Struct(f">{count}I" + f"{DIGEST}s" * count)


def unpack(recipe: bytes) -> list[Ref]:
    flat = recipe_flat(recipe)
    count = len(flat) // 2
    return list(zip(flat[:count], flat[count:], strict=True))


def assemble(inline: bytes, refs: Sequence[Ref], part: Callable[[bytes], bytes]) -> bytes:
    """The whole body: `inline` with each referenced part (`part(digest)`) put back at its
    offset. Raises ValueError where the references do not fit the inline bytes."""
    if not refs:
        return inline
    return put_together(inline, tuple(o for o, _ in refs), tuple(part(d) for _, d in refs))


def put_together(own: bytes, offsets: Sequence[int], parts: Iterable[bytes]) -> bytes:
    """The whole body from the report's own bytes and its parts at their offsets (`parts`
    may be a lazy look-up: what it raises, a KeyError for a part not met, comes out as it
    is). Raises ValueError where they do not fit (an offset inside the part before it, or own
    bytes shorter than the offsets say). A quarter's export puts a million bodies together:
    the loop is kept to the fewest operations a part."""
    pieces: list[bytes] = []
    add = pieces.append  # two appends: a third faster than +=
    taken = placed = 0  # own bytes used; bytes of the whole body made so far
    for offset, part in zip(offsets, parts, strict=True):
        end = taken + offset - placed
        if end < taken:
            raise ValueError(f"a part's offset {offset} does not fit the report's own bytes")
        add(own[taken:end])
        add(part)
        taken, placed = end, offset + len(part)
    if taken > len(own):
        raise ValueError(f"the report's own bytes ({len(own)}) are shorter than its recipe says")
    add(own[taken:])
    return b"".join(pieces)


def assemble_stored(inline: bytes, recipe: bytes | None, parts: Mapping[bytes, bytes]) -> bytes:
    """A stored report's whole body from its row (`body`, `parts`) and the parts it names."""
    if not recipe:
        return inline
    return assemble(inline, unpack(recipe), parts.__getitem__)
