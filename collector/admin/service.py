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
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc

from devposture.collector.admin.commands import (
    Actor,
    CommandError,
    Denied,
    NotFound,
    Result,
    Runner,
    UnknownCommand,
    result_rows_json,
)
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig
from devposture.collector.credentials import CredentialFormatError, parse_credential
from devposture.collector.ports import grpc_options
from devposture.collector.raw_rpc import Request, Undecodable, add_raw_servicer, message_of
from devposture.collector.store import Store
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.trust import Trust
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import admin_pb2_grpc as admin_grpc

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
UNAUTHENTICATED_ACTOR = "unauthenticated"


class Unauthenticated(Exception):
    """No usable admin credential came with the call; the message says how to get one."""


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The text after `Bearer ` in the `authorization` metadata, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, credential = value.strip().partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
    return None


class AdminService(admin_grpc.AdminServicer):
    """Authenticates each call, then hands it to the shared `Runner` on one store thread."""

    def __init__(self, store: Store, config: CollectorConfig) -> None:
        self._store = store
        self._runner = Runner(store, config)
        # SQLite work stays off the event loop, on one thread (the store is not thread-safe).
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devposture-admin")

    def close(self) -> None:
        self._db.shutdown(wait=True)

    def _actor(self, presented: str | None, words: list[str], arguments: dict[str, str],
               peer: str) -> Actor:  # fmt: skip
        reason, credential_id = "", None
        if presented is None:
            reason = (
                "no admin credential came with the call: give one with --credential-file"
                " (made by `devposture-collector admin add` on the collector machine)"
            )
        else:
            try:
                credential = parse_credential(presented)
            except CredentialFormatError as exc:
                reason = str(exc)
            else:
                credential_id = credential.credential_id
                info = self._store.admin.authenticate(credential)
                if info is not None:
                    return Actor(info.name, info.role, info.credential_id)
                reason = (
                    f"admin credential {credential_id} is unknown to this collector or was"
                    " revoked: ask the collector's administrator for a new one"
                    " (`devposture-collector admin add`)"
                )
        self._store.admin.audit(
            utcnow(), actor=UNAUTHENTICATED_ACTOR, credential_id=credential_id, role="",
            command=" ".join(words), arguments=arguments, outcome="denied", message=reason,
            peer=peer,
        )  # fmt: skip
        raise Unauthenticated(reason)

    def _call(
        self, presented: str | None, request: Request[admin_pb.AdminCommand], peer: str
    ) -> Result:
        try:
            command = message_of(request)
        except Undecodable as exc:
            # Who is asking comes first, as for any call (an unknown caller is audited as such).
            actor = self._actor(presented, [], {}, peer)
            log.warning("admin call from %s refused: %s", peer, exc)
            self._store.admin.audit(
                utcnow(), actor=actor.name, credential_id=actor.credential_id, role=actor.role,
                command="", arguments={}, outcome="error", message=str(exc), peer=peer,
            )  # fmt: skip
            raise
        words, arguments = list(command.command), dict(command.arguments)
        actor = self._actor(presented, words, arguments, peer)
        return self._runner.run(words, arguments, actor, peer=peer, remote=True)

    async def Run(
        self, request: Request[admin_pb.AdminCommand], context: grpc.aio.ServicerContext[Any, Any]
    ) -> admin_pb.AdminResult:
        presented = bearer(context.invocation_metadata())
        peer = context.peer()
        loop = asyncio.get_running_loop()
        code, message = grpc.StatusCode.INTERNAL, ""
        try:
            result = await loop.run_in_executor(self._db, self._call, presented, request, peer)
        except Undecodable as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except Unauthenticated as exc:
            code, message = grpc.StatusCode.UNAUTHENTICATED, str(exc)
        except Denied as exc:
            code, message = grpc.StatusCode.PERMISSION_DENIED, str(exc)
        except UnknownCommand as exc:
            code, message = grpc.StatusCode.UNIMPLEMENTED, str(exc)
        except NotFound as exc:
            code, message = grpc.StatusCode.NOT_FOUND, str(exc)
        except StorageFull as exc:  # "the disk holding ... is full: free space, then try again"
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, exc.advice
        except CommandError as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        else:
            return admin_pb.AdminResult(
                message=result.message,
                columns=list(result.columns),
                rows_json=result_rows_json(result),
            )
        await context.abort(code, message)
        raise AssertionError("abort returns only by raising")  # pragma: no cover


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


async def start_admin_server(
    config: CollectorConfig, port: int | None = None, host: str | None = None
) -> AdminServer:
    """Open a store connection, bind the admin port (0 picks a free one) and start serving."""
    address_host = host if host is not None else config.admin_host
    wanted = config.admin_port if port is None else port
    address = f"[{address_host}]:{wanted}" if ":" in address_host else f"{address_host}:{wanted}"
    credentials = _server_credentials(config)
    store = Store.open(config.database)
    service = AdminService(store, config)
    server = grpc.aio.server(options=grpc_options())  # its port is this collector's alone
    # Raw bytes in: Run decodes them itself, so an undecodable call is audited too.
    add_raw_servicer(service, admin_pb.DESCRIPTOR.services_by_name["Admin"], server)
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
