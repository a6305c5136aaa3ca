"""A PostureReport's fields walked from its descriptor: every field path, a report with every
field filled, and the message holding a path's field. The validation tests generate their
reports from these (`test_validation_fuzz.py` against a live collector, and
`test_ingest_validation.py` against the compiled check), so a field added to the protocol
is covered by both without a test change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from devposture.v1 import devposture_pb2 as pb

TIMESTAMP = "google.protobuf.Timestamp"

FieldPath = tuple[FieldDescriptor, ...]


def field_paths(descriptor: Descriptor, prefix: FieldPath = ()) -> Iterator[FieldPath]:
    """Every field under `descriptor`, as the path of fields leading to it (a Timestamp is a
    field of its own, not walked into)."""
    for fd in descriptor.fields:
        path = (*prefix, fd)
        yield path
        if fd.message_type is not None and fd.message_type.full_name != TIMESTAMP:
            yield from field_paths(fd.message_type, path)


PATHS: list[FieldPath] = list(field_paths(pb.PostureReport.DESCRIPTOR))


def scalar(fd: FieldDescriptor) -> object:
    """A valid value of a scalar field that is not its default."""
    if fd.type == FieldDescriptor.TYPE_STRING:
        return "x"
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return b"x"
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        return max(fd.enum_type.values_by_number)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return True
    if fd.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return 1.5
    return 7


def fill(message: Message, moment: int) -> None:
    """Every field of `message`, recursively, with a valid value that is not the default;
    every Timestamp at `moment` (seconds) and 5 ns."""
    descriptor = cast(Descriptor, message.DESCRIPTOR)  # upb's type, spelled apart by the stubs
    for fd in descriptor.fields:
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            child = getattr(message, fd.name).add() if fd.is_repeated else getattr(message, fd.name)
            if fd.message_type is not None and fd.message_type.full_name == TIMESTAMP:
                child.seconds, child.nanos = moment, 5
            else:
                fill(child, moment)
        elif fd.is_repeated:
            getattr(message, fd.name).append(scalar(fd))
        else:
            setattr(message, fd.name, scalar(fd))


def holder(report: pb.PostureReport, path: FieldPath) -> Message:
    """The message at `path` in `report` (a repeated one's first item, added when empty)."""
    message: Message = report
    for fd in path:
        value = getattr(message, fd.name)
        message = (value[0] if len(value) else value.add()) if fd.is_repeated else value
    return message
