"""The Admin gRPC service (`devposture.v1.Admin/Run`) on its own port.

It has its own grpc.aio server, bound to `[admin] host`/`port`, so that the agent ports serve
only enrollment, renewal and reports, and this port serves only administration: a firewall
rule can keep it on an admin network, and a bug in one service cannot expose the other. TLS
uses the collector's server certificate (and sends the CA after it, so the CLI can pin the CA
by fingerprint as agents do); the caller proves itself with an admin credential in the
`authorization: Bearer dpa_...` metadata, not with a client certificate, because people, not
devices, hold it.

Every call writes one audit entry: unauthenticated ones too (as "unauthenticated", with the
credential id if one was given), so that guessing at the port is on record, and calls whose
bytes are not an AdminCommand (an "error" entry saying what is wrong, after the credential is
checked): the request reaches the service as raw bytes and is decoded here
(collector/raw_rpc.py), so gRPC never refuses a call behind the audit log's back.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc

from devposture.collector import outage
from devposture.collector.admin.commands import (
    COMMANDS,
    ERROR_METADATA,
    EXPORT_FILE,
    MESSAGE_METADATA,
    Actor,
    Cancelled,
    CommandError,
    Denied,
    NotFound,
    Precondition,
    Result,
    Runner,
    UnknownCommand,
    result_rows_json,
)
from devposture.collector.admin.one_export import Busy, OneExport, Running
from devposture.collector.admin.worded_cells import cells_json
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig
from devposture.collector.credentials import ROLE_RANK, CredentialFormatError, parse_credential
from devposture.collector.datadir import EXPORT_FOLDER_PREFIX
from devposture.collector.policy.in_force import zone_in_force
from devposture.collector.ports import grpc_options
from devposture.collector.raw_rpc import Request, Undecodable, add_raw_servicer, message_of
from devposture.collector.store import Store
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.trust import Trust
from devposture.policy.cli_messages import Said, Worded, said
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import admin_pb2_grpc as admin_grpc

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
UNAUTHENTICATED_ACTOR = "unauthenticated"


class Unauthenticated(Worded):
    """No usable admin credential came with the call; the message says how to get one."""


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The text after `Bearer ` in the `authorization` metadata, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, credential = value.strip().partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
    return None


# The bundle travels in chunks well under gRPC's 4 MB message limit.
EXPORT_CHUNK_BYTES = 1 << 20
# Progress is sent at most this often (an export reports after every batch of records).
PROGRESS_INTERVAL_SECONDS = 0.5
EXPORT_WORDS = ["audit", "export"]


# A refusal's status: its code, its text, and its trailing metadata.
Refusal = tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]
# What a refusal may carry at most (gRPC refuses trailers past 8 KiB by default; the text
# goes there too, percent-encoded).
_WORDED_BYTES = 3000


def _status_of(exc: Exception) -> Refusal | None:
    """The gRPC status for an exception a command may raise, or None for an unexpected one."""
    codes: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
        (Undecodable, grpc.StatusCode.INVALID_ARGUMENT),
        (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (Denied, grpc.StatusCode.PERMISSION_DENIED),
        (UnknownCommand, grpc.StatusCode.UNIMPLEMENTED),
        (NotFound, grpc.StatusCode.NOT_FOUND),
        (Precondition, grpc.StatusCode.FAILED_PRECONDITION),
        (Cancelled, grpc.StatusCode.CANCELLED),  # to nobody: the caller has gone
        (CommandError, grpc.StatusCode.INVALID_ARGUMENT),
        (Busy, grpc.StatusCode.RESOURCE_EXHAUSTED),  # another export runs (one_export)
    )
    if isinstance(exc, StorageFull):  # "the disk holding ... is full: free space, then try again"
        return grpc.StatusCode.RESOURCE_EXHAUSTED, *_worded(Worded(exc.worded_advice))
    code = next((code for kind, code in codes if isinstance(exc, kind)), None)
    if code is None:
        return None
    if not isinstance(exc, Worded):
        return code, _carried(str(exc)), ()
    return code, *_worded(exc)


def _worded(exc: Worded) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The text (Chinese, then English, for a command line of an older version, which shows
    it as it is) and the metadata that carries the refusal worded, for a newer one to word in
    its reader's language."""
    english, chinese = exc.worded("en"), exc.worded("zh")
    wire = exc.wire()
    both = f"{chinese} / {english}" if chinese != english else english
    text = both if len(both.encode()) * 3 + len(wire) < _WORDED_BYTES else _carried(english)
    return text, ((ERROR_METADATA, wire),) if len(wire) < _WORDED_BYTES else ()


# The most UTF-8 bytes of a refusal's text, and of its end kept when it is cut. Percent-encoded
# (up to three times as long) beside the worded metadata, it stays within the trailers' 8 KiB.
_TEXT_BYTES = 1500
_TEXT_END_BYTES = 400


def _carried(text: str) -> str:
    """`text`, cut in the middle to `_TEXT_BYTES` when longer. A refusal quotes what the caller
    sent ("no device …", "`device list` does not take …"), and a status past the trailers'
    limit never reaches the caller: grpcio answered RESOURCE_EXHAUSTED ("received metadata
    size exceeds hard limit") instead, and grpc-js waited out its deadline while the whole
    connection stalled. The end, which says what to do, is kept."""
    data = text.encode()
    if len(data) <= _TEXT_BYTES:
        return text
    cut = "…"
    head = data[: _TEXT_BYTES - _TEXT_END_BYTES - len(cut.encode())].decode(errors="ignore")
    tail = data[-_TEXT_END_BYTES:].decode(errors="ignore")
    return f"{head}{cut}{tail}"


def _unnamed(sentence: Said, path: str) -> Said:
    """`sentence` with the collector's own file for the bundle (`path`, a temporary folder the
    remote reader cannot see) said as "the bundle", at any depth: an export's summary is
    several lines when its period ends in the future, and only its first line's file was
    replaced, so the remote reader read the collector's temporary path."""
    return sentence.swapping(lambda value: said("the bundle") if value == path else None)


class AdminService(admin_grpc.AdminServicer):
    """Authenticates each call, then hands it to the shared `Runner` on one store thread."""

    def __init__(self, store: Store, config: CollectorConfig) -> None:
        self._config = config
        self._store = store
        self._runner = Runner(store, config)
        # SQLite work stays off the event loop, on one thread (the store is not thread-safe).
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devposture-admin")
        self._exports = OneExport()

    def close(self) -> None:
        self._db.shutdown(wait=True)

    def _actor(self, presented: str | None, words: list[str], arguments: dict[str, str],
               peer: str, store: Store | None = None) -> Actor:  # fmt: skip
        """Who calls; `store`: the one to authenticate and audit with (the service's own by
        default; an export has its own)."""
        store = store or self._store
        credential_id = None
        if presented is None:
            reason = Unauthenticated(
                "no admin credential came with the call: give one with --credential-file"
                " (made by `devposture-collector admin add` on the collector machine)"
            )
        else:
            try:
                credential = parse_credential(presented)
            except CredentialFormatError as exc:
                reason = Unauthenticated.as_is(exc)
            else:
                credential_id = credential.credential_id
                info = store.admin.authenticate(credential)
                if info is not None:
                    return Actor(info.name, info.role, info.credential_id)
                reason = Unauthenticated(
                    "admin credential {credential_id} is unknown to this collector or was"
                    " revoked: ask the collector's administrator for a new one"
                    " (`devposture-collector admin add`)",
                    credential_id=credential_id,
                )
        store.admin.audit(
            utcnow(), actor=UNAUTHENTICATED_ACTOR, credential_id=credential_id, role="",
            command=" ".join(words), arguments=arguments, outcome="denied", message=str(reason),
            peer=peer,
        )  # fmt: skip
        raise reason

    def _command(
        self, presented: str | None, request: Request[admin_pb.AdminCommand], peer: str,
        store: Store | None = None,
    ) -> tuple[list[str], dict[str, str], Actor]:  # fmt: skip
        """The call's words and arguments, and who asks (each refusal audited)."""
        store = store or self._store
        try:
            command = message_of(request)
        except Undecodable as exc:
            # Who is asking comes first, as for any call (an unknown caller is audited as such).
            actor = self._actor(presented, [], {}, peer, store)
            log.warning("admin call from %s refused: %s", peer, exc)
            store.admin.audit(
                utcnow(), actor=actor.name, credential_id=actor.credential_id, role=actor.role,
                command="", arguments={}, outcome="error", message=str(exc), peer=peer,
            )  # fmt: skip
            raise
        words, arguments = list(command.command), dict(command.arguments)
        return words, arguments, self._actor(presented, words, arguments, peer, store)

    def _call(
        self, presented: str | None, request: Request[admin_pb.AdminCommand], peer: str
    ) -> Result:
        words, arguments, actor = self._command(presented, request, peer)
        return self._runner.run(words, arguments, actor, peer=peer, remote=True)

    def _export(
        self, presented: str | None, request: Request[admin_pb.AdminCommand], peer: str,
        out: Path, progress: Callable[[int, int], None], *, stop: threading.Event,
    ) -> Result:  # fmt: skip
        """`audit export` into `out`, the service's own temporary file, on a store connection
        of its own (opened on this thread), so a long export does not hold up the other calls.
        Whatever the caller named as words, this call exports (audited as `audit export`).
        One at a time (`one_export`): a caller allowed to export while another export runs
        is refused (audited as an error), or waits for one whose caller has gone. `stop`,
        set once this call's caller has gone, stops the export."""
        store = Store.open(self._config.database)
        try:
            _, arguments, actor = self._command(presented, request, peer, store)
            runner = Runner(store, self._config)
            if ROLE_RANK.get(actor.role, 0) < ROLE_RANK[COMMANDS[("audit", "export")].role]:
                # Refused by the runner as for any command (audited as denied), never as busy.
                return runner.run(EXPORT_WORDS, arguments, actor, peer=peer, remote=True,
                                  streamed=True)  # fmt: skip
            running = Running(actor.name, utcnow(), stop)

            def reported(done: int, total: int) -> None:
                running.progress(done, total)
                progress(done, total)

            try:
                with self._exports.claimed(running, lambda: zone_in_force(self._config, store)):
                    return runner.run(
                        EXPORT_WORDS, {**arguments, "out": str(out)}, actor, peer=peer,
                        remote=True, streamed=True, progress=reported, stop=stop,
                    )  # fmt: skip
            except Busy as busy:
                store.admin.audit(
                    utcnow(), actor=actor.name, credential_id=actor.credential_id,
                    role=actor.role, command=" ".join(EXPORT_WORDS), arguments=arguments,
                    outcome="error", message=str(busy), peer=peer,
                )  # fmt: skip
                raise
        finally:
            store.close()

    async def Run(
        self, request: Request[admin_pb.AdminCommand], context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb.AdminResult:
        presented = bearer(context.invocation_metadata())
        peer = context.peer()
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._db, self._call, presented, request, peer)
        except Exception as exc:
            status = _status_of(exc)
            if status is None:
                raise
            code, text, trailing = status
            await context.abort(code, text, trailing_metadata=trailing)
            raise AssertionError("abort returns only by raising") from exc  # pragma: no cover
        if result.said is not None:
            worded = json.dumps(result.said.data(), sort_keys=True)
            if len(worded) < _WORDED_BYTES:
                context.set_trailing_metadata(((MESSAGE_METADATA, worded),))
        return admin_pb.AdminResult(
            message=result.message,
            columns=list(result.columns),
            rows_json=result_rows_json(result),
            worded_cells_json=cells_json(result.rows),
        )

    async def Export(
        self, request: Request[admin_pb.AdminCommand], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[admin_pb.ExportChunk]:
        """Write the bundle into a temporary folder in the data folder (0700, on the disk that
        holds the data), sending progress while it is written, then stream it and delete it.
        The export runs on a store thread of its own, so the admin port keeps answering."""
        presented = bearer(context.invocation_metadata())
        peer = context.peer()
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        last = [0.0]

        def progress(done: int, total: int) -> None:  # on the export's thread
            now = time.monotonic()
            if done == total or now - last[0] >= PROGRESS_INTERVAL_SECONDS:
                last[0] = now
                loop.call_soon_threadsafe(updates.put_nowait, (done, total))

        failure: Refusal | None = None
        stop = _set_when_gone(context)
        # Removed before the status goes out, so that no refusal leaves a folder behind.
        folder = Path(tempfile.mkdtemp(prefix=EXPORT_FOLDER_PREFIX, dir=self._config.data_dir))
        out = folder / EXPORT_FILE
        work = loop.run_in_executor(None, functools.partial(
            self._export, presented, request, peer, out, progress, stop=stop))  # fmt: skip
        try:
            while not work.done():
                update = asyncio.ensure_future(updates.get())
                waits: set[asyncio.Future[Any]] = {work, update}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not update.done():
                    update.cancel()
                    continue
                done, total = update.result()
                yield admin_pb.ExportChunk(records_done=done, records_total=total)
            try:
                result = work.result()
            except Exception as exc:
                failure = _status_of(exc)
                if failure is None:
                    raise
            else:
                size = out.stat().st_size
                with out.open("rb") as bundle_file:
                    while chunk := bundle_file.read(EXPORT_CHUNK_BYTES):
                        yield admin_pb.ExportChunk(data=chunk, bundle_size=size)
                summary = result.message.replace(str(out), "the bundle")
                if result.said is not None:  # worded for the remote reader, the file unnamed
                    unnamed = _unnamed(result.said, str(out))
                    worded = json.dumps(unnamed.data(), sort_keys=True)
                    if len(worded) < _WORDED_BYTES:
                        context.set_trailing_metadata(((MESSAGE_METADATA, worded),))
                yield admin_pb.ExportChunk(bundle_size=size, message=summary)
        finally:
            await _ended(work, stop, folder, peer)
        if failure is not None:
            code, text, trailing = failure
            await context.abort(code, text, trailing_metadata=trailing)


def _set_when_gone(context: grpc.aio.ServicerContext[Any, Any]) -> threading.Event:
    """An event set once the call's caller has gone (cancelled, its deadline passed, its
    connection dropped): gRPC then cancels the handler where it waits, or closes it where it
    yielded a chunk, and calls back in both cases (at the end of a call that went well too,
    which is harmless: its export is over)."""
    stop = threading.Event()
    # The stubs type the callback as a class of theirs, which no function is.
    context.add_done_callback(cast("Any", lambda _: stop.set()))
    return stop


async def _ended(work: asyncio.Future[Result], stop: threading.Event, folder: Path,
                 peer: str) -> None:  # fmt: skip
    """The export's end, whatever ended the call: one whose caller has gone is told to stop
    and ends (its workers ended, its partial bundle removed, audited as cancelled) before its
    folder is removed, so that nothing is left and no core works for nobody."""
    if not work.done():
        stop.set()
        log.info("remote audit export for %s stopped: its caller went away", peer)
    await asyncio.wait({work})
    shutil.rmtree(folder, ignore_errors=True)


def _server_credentials(config: CollectorConfig) -> grpc.ServerCredentials:
    """TLS with the server certificate, the CA sent after it; no client certificate asked."""
    trust = Trust(config)
    reloading = getattr(trust, "server_credentials", None)
    if callable(reloading):
        credentials: grpc.ServerCredentials = reloading(require_client_auth=False)
        return credentials
    chain = config.server_cert.read_bytes() + trust.trusted_ca_pem()
    return grpc.ssl_server_credentials(
        [(config.server_key.read_bytes(), chain)], root_certificates=None,
        require_client_auth=False,
    )  # fmt: skip


@dataclass
class AdminServer:
    server: grpc.aio.Server
    service: AdminService
    store: Store
    port: int

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        await self.server.stop(grace)
        self.service.close()
        self.store.close()


def remove_unfinished_exports(data_dir: Path) -> int:
    """Remove the remote exports' folders a collector left when it was killed mid-export
    (`Export` removes its own as it ends): each holds a partial bundle, report bodies among
    it, which retention would never reach. Called as administration starts, before any export
    of this collector can begin: only the one collector process serving administration on a
    data folder makes them (`serve --workers`: worker 0), so none is in use then. Returns how
    many were removed."""
    removed = 0
    for folder in data_dir.glob(EXPORT_FOLDER_PREFIX + "*"):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    if removed:
        log.info("removed %d unfinished remote export folder(s) a stopped collector left", removed)
    return removed


async def start_admin_server(
    config: CollectorConfig, port: int | None = None, host: str | None = None
) -> AdminServer:
    """Open a store connection, bind the admin port (0 picks a free one) and start serving."""
    address_host = host if host is not None else config.admin_host
    wanted = config.admin_port if port is None else port
    address = f"[{address_host}]:{wanted}" if ":" in address_host else f"{address_host}:{wanted}"
    credentials = _server_credentials(config)
    remove_unfinished_exports(config.data_dir)
    store = Store.open(config.database)
    service = AdminService(store, config)
    server = grpc.aio.server(options=grpc_options())  # its port is this collector's alone
    # Raw bytes in: Run decodes them itself, so an undecodable call is audited too.
    add_raw_servicer(
        service, admin_pb.DESCRIPTOR.services_by_name["Admin"], server, guard=outage.guarded
    )
    try:
        try:
            bound = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address} for administration: {exc}") from exc
        if bound == 0:
            raise OSError(
                f"cannot listen on {address} for administration: the port is in use or the"
                " address is not local; change [admin] port in collector.toml or give"
                " --admin-port"
            )
    except OSError:
        service.close()
        store.close()
        raise
    await server.start()
    log.info("collector administration listening on port %d", bound)
    return AdminServer(server, service, store, bound)
