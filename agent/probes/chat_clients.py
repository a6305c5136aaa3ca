"""Installed WeChat and WeCom clients and their versions, on every OS (clause 6.3.1, "定期更新
系统和软件": old chat clients carry known vulnerabilities, so the collector compares each
version with the policy's minimum).

Each OS module names its sources (Windows: Uninstall keys and install folders; macOS: the
app bundles' Info.plist; Linux: the system's dpkg or rpm database, and flatpak) as functions
that return the clients they found; `scan` runs them in order and files the fact, the same way
everywhere:

  * No client installed is a fact (an empty list), not an error.
  * A client that is there but whose version cannot be read is listed with version "" and
    `version_error` saying why: it costs that client, never the others.
  * A source that cannot be read at all (a tool missing, access denied) is a ProbeError with
    its source name; the clients the other sources found are still reported, and the
    collector reads the clause UNKNOWN, because the unread source may hide an old client.
  * When no source could be read, there is no fact, only the errors.
  * At most `MAX_CLIENTS` clients (the collector's limit; each app, place and version is one,
    so a computer of many users' copies can pass it). When there are more, those whose version
    is unknown are kept first, then each app's oldest, taken in turn app by app: whatever
    fails the clause (an old client) or leaves it unknown is among those kept. How many were
    left out is said in an error of source `CLIENTS_SOURCE`, which the collector reads as a
    source not read: the clause is then UNKNOWN at best, never PASS on a partial list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from devposture.agent.probes.report_room import keep
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_CHAT_CLIENTS
Source = Callable[[ProbeContext], list[pb.ChatClient]]
MAX_CLIENTS = 64  # the collector's DEFAULT_MAX_ITEMS
CLIENTS_SOURCE = "clients"

APP_NAMES: dict[pb.ChatApp.ValueType, str] = {
    pb.CHAT_APP_WECHAT: "WeChat",
    pb.CHAT_APP_WECOM: "WeCom",
}


def found(
    app: pb.ChatApp.ValueType, version: str, source: str, location: str = ""
) -> pb.ChatClient:
    """A client whose version was read."""
    return pb.ChatClient(app=app, version=version, source=source, location=location)


def unreadable(app: pb.ChatApp.ValueType, source: str, location: str, why: str) -> pb.ChatClient:
    """A client that is installed, whose version could not be read, saying why."""
    return pb.ChatClient(app=app, source=source, location=location, version_error=why)


def _key(client: pb.ChatClient) -> tuple[int, str, str, str]:
    return (client.app, client.location.casefold(), client.source, client.version)


def scan(ctx: ProbeContext, sources: Sequence[tuple[str, Source]]) -> FactOutcome:
    """The fact from `sources` (name, reader), read in order; a reader raises the host's or a
    parser's error when its whole source is unreadable."""
    fact = pb.ChatClientsFact()
    errors: list[pb.ProbeError] = []
    seen: set[tuple[int, str, str, str]] = set()
    read_any = False
    for name, read in sources:
        try:
            clients = read(ctx)
        except (HostError, ParseError) as exc:
            errors.append(source_error(FACT, name, exc))
            continue
        read_any = True
        for client in clients:
            if _key(client) not in seen:
                seen.add(_key(client))
                fact.clients.append(client)
    clients = list(fact.clients)
    ranks = _ranks(clients)
    chosen, left_out = keep(range(len(clients)), ranks.__getitem__, MAX_CLIENTS)
    if left_out:
        message = (
            f"{left_out} of {len(clients)} chat clients left out of the report (the"
            f" collector takes {MAX_CLIENTS}): those whose version is unknown and each app's"
            " oldest are kept"
        )
        errors.append(error(FACT, pb.PROBE_ERROR_CODE_UNSPECIFIED, message, CLIENTS_SOURCE))
        del fact.clients[:]
        fact.clients.extend(clients[i] for i in chosen)
    return FactOutcome(fact if read_any else None, errors)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _ranks(clients: Sequence[pb.ChatClient]) -> list[tuple[int, int]]:
    """Each client's rank: (0, 0) when its version is unknown, else (1, n) for its app's n-th
    oldest, so that each app's oldest come first, one app after the other."""
    by_app: dict[int, list[int]] = {}
    for index, client in enumerate(clients):
        if client.version:
            by_app.setdefault(client.app, []).append(index)
    ranks = [(0, 0)] * len(clients)
    for same in by_app.values():
        for n, index in enumerate(sorted(same, key=lambda i: _numbers(clients[i].version))):
            ranks[index] = (1, n)
    return ranks
