"""Why some bytes are not a valid protobuf message of a given type, in words.

protobuf's decoder says little more than "Error parsing message with type X" and never where,
so a caller refused with that learns nothing it can fix. This walks the wire format the way
the decoder (upb) does, guided by the message's descriptor, and names the first problem: the
field path (`report.host.hostname`, `reports[2].id`) or the byte where the data stops being
protobuf. It never quotes the bytes themselves (they come from the caller).

It runs only after the decoder has refused the bytes, so an accepted call never pays for it.
Pure: bytes and a descriptor in, a sentence out.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# upb's default nesting limit for messages and groups.
MAX_DEPTH = 100
# What the decoder says when this walk finds nothing wrong (they should never disagree).
UNEXPLAINED = "its bytes cannot be decoded as this message"

_VARINT, _I64, _LEN, _START_GROUP, _END_GROUP, _I32 = 0, 1, 2, 3, 4, 5
_FIXED_SIZES = {
    FieldDescriptor.TYPE_DOUBLE: 8, FieldDescriptor.TYPE_FIXED64: 8,
    FieldDescriptor.TYPE_SFIXED64: 8, FieldDescriptor.TYPE_FLOAT: 4,
    FieldDescriptor.TYPE_FIXED32: 4, FieldDescriptor.TYPE_SFIXED32: 4,
}  # fmt: skip
_NOT_PACKABLE = {FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES,
                 FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP}  # fmt: skip


class _Bad(Exception):
    """The first problem found; str() is the sentence."""


def undecodable_reason(descriptor: Descriptor, data: bytes) -> str:
    """What is wrong with `data` as a message of type `descriptor`, e.g. "report.host.hostname
    is not valid UTF-8 text" or "byte 0 holds wire type 7, which does not exist: these bytes
    are not protobuf"; UNEXPLAINED if the walk finds nothing wrong."""
    try:
        _walk(_Span(data, "", 0), descriptor, 0, len(data), group=None)
    except _Bad as bad:
        return str(bad)
    return UNEXPLAINED


class _Span:
    """The bytes, and where in the message tree the walk is (for the sentence)."""

    __slots__ = ("data", "depth", "path")

    def __init__(self, data: bytes, path: str, depth: int) -> None:
        self.data, self.path, self.depth = data, path, depth

    def inside(self, path: str, at: int) -> _Span:
        if self.depth + 1 > MAX_DEPTH:
            raise _Bad(f"{_short(path)} (byte {at}) is nested more than {MAX_DEPTH} levels deep")
        return _Span(self.data, path, self.depth + 1)

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """The varint at `pos` and the position after it."""
        value, shift, start = 0, 0, pos
        while True:
            if pos >= end:
                raise _Bad(f"the data ends in the middle of a number (byte {start}){self._in()}")
            byte = self.data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos
            shift += 7
            if shift >= 70:
                raise _Bad(f"the number at byte {start}{self._in()} runs past 10 bytes")

    def _in(self) -> str:
        return f" in {_short(self.path)}" if self.path else ""


def _walk(span: _Span, descriptor: Descriptor | None, pos: int, end: int, group: int | None) -> int:
    """Check the fields in data[pos:end] (a message, or a group ended by the end-group tag of
    field `group`); the position after them."""
    seen: dict[int, int] = {}
    while pos < end:
        at = pos
        tag, pos = span.varint(pos, end)
        number, wire = tag >> 3, tag & 7
        if tag > 0xFFFFFFFF:
            raise _Bad(f"byte {at} holds a field tag over 32 bits: these bytes are not protobuf")
        # Field 0 is corrupt in a message; upb skips an unknown group without looking.
        if number == 0 and (descriptor is not None or group is None):
            raise _Bad(f"byte {at} holds field number 0, which does not exist:"
                       " these bytes are not protobuf")  # fmt: skip
        if wire in (6, 7):
            raise _Bad(f"byte {at} holds wire type {wire}, which does not exist:"
                       " these bytes are not protobuf")  # fmt: skip
        if wire == _END_GROUP:
            if group == number:
                return pos
            if group is None:
                raise _Bad(f"byte {at} ends a group that was never started")
            raise _Bad(f"byte {at} ends another group than {_short(span.path)}, which is open")
        field = None if descriptor is None else descriptor.fields_by_number.get(number)
        name = _name(span.path, field, number, seen)
        if wire == _VARINT:
            _, pos = span.varint(pos, end)
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
            if pos > end:
                raise _Bad(f"the data ends inside {_short(name)} (byte {at})")
        elif wire == _LEN:
            length, pos = span.varint(pos, end)
            if length > end - pos:
                raise _Bad(f"{_short(name)} at byte {at} says it holds {length} bytes,"
                           f" but only {end - pos} follow")  # fmt: skip
            if field is not None:
                _check_len(span, field, name, at=at, start=pos, end=pos + length)
            pos += length
        else:  # a group: known (proto2 style) or not, the decoder walks it
            known = field is not None and field.type == field.TYPE_GROUP
            inner = field.message_type if known and field is not None else None
            pos = _walk(span.inside(name, at), inner, pos, end, group=number)
    if group is not None:
        raise _Bad(f"the group {_short(span.path)} is never closed")
    return pos


def _check_len(
    span: _Span, field: FieldDescriptor, name: str, *, at: int, start: int, end: int
) -> None:
    """A length-delimited value of a known field (its tag at byte `at`, its value in
    data[start:end]): text, a message or packed numbers."""
    pos = start
    if field.type == field.TYPE_STRING:
        # proto3 strings must be UTF-8 (every devposture message is proto3).
        try:
            span.data[pos:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Bad(f"{_short(name)} is not valid UTF-8 text (byte {pos + exc.start})") from None
    elif field.type == field.TYPE_MESSAGE and field.message_type is not None:
        _walk(span.inside(name, at), field.message_type, pos, end, group=None)
    elif field.is_repeated and field.type not in _NOT_PACKABLE:
        size = _FIXED_SIZES.get(field.type)
        if size is not None:
            if (end - pos) % size:
                raise _Bad(f"{_short(name)} at byte {at} packs {end - pos} bytes, not a whole"
                           f" number of {size}-byte values")  # fmt: skip
            return
        packed = _Span(span.data, name, span.depth)
        while pos < end:
            _, pos = packed.varint(pos, end)


def _name(path: str, field: FieldDescriptor | None, number: int, seen: dict[int, int]) -> str:
    """The path of this occurrence of field `number`: `host.hostname`, `reports[2]`,
    `report.field 99` for a field this collector does not know."""
    if field is None:
        leaf = f"field {number}"
    elif field.is_repeated:
        index = seen.get(number, 0)
        seen[number] = index + 1
        leaf = f"{field.name}[{index}]"
    else:
        leaf = field.name
    return f"{path}.{leaf}" if path else leaf


def _short(path: str) -> str:
    """A long path (nested groups) with its middle left out: the sentence stays short."""
    parts = path.split(".")
    if len(parts) <= 6:
        return path
    return ".".join([*parts[:2], f"…({len(parts) - 4} more)…", *parts[-2:]])
