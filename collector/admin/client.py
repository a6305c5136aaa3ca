"""Run admin commands on a collector over the network, from IT's computer.

The collector is found the way an agent finds it: by the fingerprint of its CA (see
`devposture.net.pinning`), so a machine in the middle cannot pose as the collector and collect the
credential. The credential is read from a file or standard input, never from the command
line, where other users of the computer could see it. Every call has a deadline.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import grpc

from devposture.collector import new_file
from devposture.collector.admin.commands import (
    EXPORT_FILE,
    MESSAGE_METADATA,
    CommandError,
    Result,
    told,
)
from devposture.collector.admin.worded_cells import with_cells
from devposture.collector.credentials import CredentialFormatError, parse_credential
from devposture.collector.render import Row
from devposture.net.address import CollectorAddress
from devposture.net.pinning import PinningError, fetch_pinned_ca, normalize_fingerprint
from devposture.net.rpc_status import status_of, worded_detail, worded_trailer
from devposture.net.tls_probe import probe_tls, unlisted_name
from devposture.policy.cli_messages import Said, reader_language, said, say
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import admin_pb2_grpc as admin_grpc

ADMIN_DEADLINE_SECONDS = 60.0
# A quarter's bundle takes about a minute to write and hundreds of MB to send.
EXPORT_DEADLINE_SECONDS = 3 * 3600.0


class RemoteError(CommandError):
    """The remote collector could not be asked, or refused; the message says what to do."""


def read_credential(source: str) -> str:
    """The credential from a file, or from standard input for `-`; checked for its form."""
    if source == "-":
        text = sys.stdin.readline()
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
            mode = stat.S_IMODE(path.stat().st_mode)
        except (OSError, UnicodeDecodeError) as exc:
            raise RemoteError(
                "cannot read the credential file {path} ({problem}); give the file that"
                " `devposture-collector admin add` output was saved to, or - for standard"
                " input",
                path=source, problem=exc,
            ) from exc
        if mode & 0o077 and os.name == "posix":
            warning = said(
                "{path} can be read by other users; protect it with `chmod 600 {path}`",
                path=source,
            )
            say("devposture-collector: warning: {warning}", warning=warning,
                stream=sys.stderr)
    try:
        return str(parse_credential(text))
    except CredentialFormatError as exc:
        raise RemoteError("{path}: {problem}", path=source, problem=exc) from exc


def _explain(error: grpc.RpcError, address: CollectorAddress, ca_pem: bytes) -> Said:
    """What the person reads for a failed call. The collector's own refusal comes worded
    (its template and parameters in the trailing metadata, `ERROR_METADATA`), so that it is
    shown in the reader's language; a collector of an older version sends only its text."""
    code, text = status_of(error)
    detail = remote_error(error) or Said(text, as_is=True)
    target = address.target()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return said("the collector refused the credential: {detail}", detail=detail)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return said("not allowed: {detail}", detail=detail)
    if code == grpc.StatusCode.UNAVAILABLE:
        return _unreachable(address, ca_pem, detail)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return said(
            "the collector at {target} did not answer within the deadline; try again",
            target=target,
        )
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return _not_the_admin_port(target, detail)
    return said("{detail} ({code})", detail=detail, code=code.name if code else "error")


def remote_error(error: grpc.RpcError) -> Said | None:
    """The collector's refusal as it sent it worded (None from an older collector)."""
    return worded_detail(error)


def _not_the_admin_port(target: str, detail: Said) -> Said:
    return said(
        "{target} does not serve administration ({detail}): give the admin port ([admin] port"
        " in collector.toml, 7445 by default), not an agent port",
        target=target, detail=detail,
    )  # fmt: skip


def _unreachable(address: CollectorAddress, ca_pem: bytes, detail: Said) -> Said:
    """Why the admin port could not be used, when one more TLS connection (trusting the
    pinned CA only) can tell: it is the report port, or the name is not on the certificate."""
    found = probe_tls(address, ca_pem)
    if found is not None and found.asks_for_certificate:
        return _not_the_admin_port(address.target(), said("it asks for a device certificate"))
    if found is not None and found.names is not None and not found.name_listed:
        return unlisted_name(address, found.names)
    return said(
        "cannot reach the collector's admin port at {target} over TLS ({detail}). Check that"
        " `devposture-collector serve` runs there and [admin] host/port in collector.toml"
        " (7445 by default), then try again",
        target=address.target(), detail=detail,
    )


def _pinned(collector: str, ca_fingerprint: str, timeout: float) -> tuple[CollectorAddress, bytes]:
    """The collector's address and its CA, checked against the fingerprint before anything
    (the credential above all) is sent."""
    try:
        address = CollectorAddress.parse(collector)
        pin = normalize_fingerprint(ca_fingerprint)
    except ValueError as exc:
        raise RemoteError.as_is(exc) from exc
    try:
        ca_pem = fetch_pinned_ca(address.host, address.port, pin, timeout=min(timeout, 15.0))
    except PinningError as exc:
        raise RemoteError.as_is(exc) from exc
    return address, ca_pem


def run_remote(
    collector: str,
    ca_fingerprint: str,
    credential: str,
    words: Sequence[str],
    arguments: Mapping[str, str],
    *,
    timeout: float = ADMIN_DEADLINE_SECONDS,
) -> Result:
    """Run one command on the collector at `collector` (HOST:PORT of its admin port)."""
    address, ca_pem = _pinned(collector, ca_fingerprint, timeout)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    request = admin_pb.AdminCommand(command=list(words), arguments=dict(arguments))
    with grpc.secure_channel(address.target(), credentials) as channel:
        try:
            answer, call = admin_grpc.AdminStub(channel).Run.with_call(
                request, timeout=timeout, metadata=(("authorization", f"Bearer {credential}"),)
            )
        except grpc.RpcError as exc:
            raise RemoteError(_explain(exc, address, ca_pem)) from exc
    rows: list[Row] = json.loads(answer.rows_json) if answer.rows_json else []
    rows = with_cells(rows, answer.worded_cells_json)
    return Result(answer.message, tuple(answer.columns), rows, said=_worded_message(call))


def _worded_message(call: grpc.Call) -> Said | None:
    """The result's sentence as the collector sent it worded (None from an older collector,
    whose English message is then shown as it is)."""
    return worded_trailer(call, MESSAGE_METADATA)
    return None


def export_remote(
    collector: str,
    ca_fingerprint: str,
    credential: str,
    arguments: Mapping[str, str],
    out: Path,
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = EXPORT_DEADLINE_SECONDS,
) -> Result:
    """`audit export` on the collector at `collector`, the bundle streamed into `out` (a new
    file: never one that exists). `arguments` are `from` and `to`; `progress` is given each
    line of progress to show. The file appears only whole: it is written beside, as
    `out.<random>.partial`, and put in place once all its bytes came (collector/new_file.py)."""
    if out.exists():
        raise RemoteError("{path} exists already: give a new file name", path=out)
    address, ca_pem = _pinned(collector, ca_fingerprint, timeout)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    request = admin_pb.AdminCommand(command=["audit", "export"], arguments=dict(arguments))
    partial = new_file.partial_beside(out)
    received, size, summary = 0, 0, ""
    try:
        with grpc.secure_channel(address.target(), credentials) as channel, \
                partial.open("xb") as sink:  # fmt: skip
            stream = admin_grpc.AdminStub(channel).Export(
                request, timeout=timeout, metadata=(("authorization", f"Bearer {credential}"),)
            )
            try:
                for chunk in stream:
                    if chunk.data:
                        sink.write(chunk.data)
                        received += len(chunk.data)
                    size = chunk.bundle_size or size
                    if progress is not None:
                        progress(_progress_line(chunk, received))
                    summary = chunk.message or summary
            except grpc.RpcError as exc:
                raise RemoteError(_explain(exc, address, ca_pem)) from exc
        if not summary or received != size:
            raise RemoteError(
                "the bundle did not arrive whole ({received} of {size} bytes): try again",
                received=received, size=size,
            )
        new_file.put_in_place(partial, out)  # never replacing a file made meanwhile
    except FileExistsError as exc:
        raise RemoteError("{path} exists already: give a new file name", path=exc.filename) from exc
    finally:
        partial.unlink(missing_ok=True)
    worded = worded_trailer(stream, MESSAGE_METADATA)
    if worded is not None:  # the local export's summary, of the file written here
        return told(_written_here(worded, out))
    return told(said("wrote {out} ({received} bytes). {summary}", out=out, received=received,
                     summary=summary))  # an older collector's English summary


# What the collector says in place of its own file's path (admin.service._unnamed).
_THE_BUNDLE = said("the bundle")


def _written_here(summary: Said, out: Path) -> Said:
    """The collector's summary of its export, at any depth, naming the file written here
    (`out`) where it names its own: its path, which it says as "the bundle", and its name in
    the command that checks it (`audit verify bundle.zip`), which sent the reader to verify a
    file they do not have. The same lines as an export on the collector machine."""
    def here(value: str | Said) -> str | None:
        return str(out) if value == _THE_BUNDLE else out.name if value == EXPORT_FILE else None

    return summary.swapping(here)


def _progress_line(chunk: admin_pb.ExportChunk, received: int) -> str:
    """How far a remote export is, in the reader's language (the words of the local
    export's line): it read in Chinese and English at once, whatever the reader's."""
    if chunk.records_total:
        line = said("audit export: {done}/{total} chain entries ({percent}%)",
                    done=chunk.records_done, total=chunk.records_total,
                    percent=100 * chunk.records_done // chunk.records_total)  # fmt: skip
    elif chunk.bundle_size:
        line = said("audit export: downloaded {received}/{size} bytes ({percent}%)",
                    received=received, size=chunk.bundle_size,
                    percent=100 * received // chunk.bundle_size)  # fmt: skip
    else:
        return ""
    return line.worded(reader_language())
