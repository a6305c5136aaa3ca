"""Which CAs each collector's `ca/` folder holds, told through the database they share.

Several collectors on one PostgreSQL each sign with the CA of their own data folder, and IT
copies `ca/` to the others after each step of a CA rollover (docs/scaling.md). A collector
that missed the copy after `stage` hands agents only the previous CA when they renew, so they
cannot verify any collector once the new CA signs; one that missed it after `activate` (or
was not given a new server certificate, `tls rotate`) still presents a server certificate of
the previous CA, which agents cannot verify once `finish` has run. Neither shows in the
database's certificates in time. So each `serve` says every half minute what its folder holds
(`Identity.keep_ca_holding`, one row per data folder), and `ca rollover activate`, `finish`
and `status` name each other collector that does not hold what the next step needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence

from cryptography import x509

from devposture.collector.alerts.collector_health import reporter
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig
from devposture.collector.pki import fingerprint
from devposture.collector.refused_writes import RefusedWrites
from devposture.collector.store import Store
from devposture.collector.store.identity import CaHolding
from devposture.collector.trust import Trust, TrustError
from devposture.policy.cli_messages import Said, Worded, enumeration, lines, said

log = logging.getLogger(__name__)
# How often a serving collector says what its folder holds.
SAY_EVERY_SECONDS = 30.0
# How often it looks at its files' modification times, to say a change at once.
LOOK_SECONDS = 1.0
# A collector that said it within this is serving (four times the beat: a slow database or a
# paused process is not taken for a stopped one); one silent longer is named apart.
SERVING_WITHIN = dt.timedelta(minutes=2)
# A collector silent for longer than this is taken as gone for good and no longer named.
GONE_AFTER = dt.timedelta(days=30)
# A moment as the command line shows it (the company's time zone).
Day = Callable[[dt.datetime], "str | Said"]


def collector_key(config: CollectorConfig) -> str:
    """This collector's row: its host and a hash of its data folder (no path is stored), as
    the alerts name it; every `serve --workers` process of the folder shares it."""
    return reporter(config)


def address_of(config: CollectorConfig) -> str:
    """Where agents reach it, to name it to IT: its listening host (this computer's name when
    it listens on every address) and report port."""
    wildcard = config.host in ("", "0.0.0.0", "::")  # noqa: S104 - comparing, not binding
    host = socket.gethostname() if wildcard else config.host
    return f"{host}:{config.report_port}"


def holding_of(config: CollectorConfig, now: dt.datetime) -> CaHolding:
    """What this collector's `ca/` and server certificate are now. A file that cannot be
    read says nothing (None, or left out of `trusted`): unknown is not the new CA."""
    trust = Trust(config)
    signing: str | None = None
    trusted: list[str] = []
    unreadable = (OSError, ValueError, TrustError)
    with contextlib.suppress(*unreadable):
        signing = fingerprint(trust.signing_authority().cert)
    with contextlib.suppress(*unreadable):
        trusted = sorted(fingerprint(ca) for ca in trust.trusted_cas())
    server: str | None = None
    with contextlib.suppress(*unreadable):
        server = trust.issuer_of(x509.load_pem_x509_certificate(config.server_cert.read_bytes()))
    return CaHolding(collector_key(config), socket.gethostname(), address_of(config), signing,
                     tuple(trusted), server, now)  # fmt: skip


async def keep_saying(
    config: CollectorConfig,
    store: Store,
    in_db: Callable[[Callable[[], None]], Awaitable[None]],
    stop: asyncio.Event,
    every: float = SAY_EVERY_SECONDS,
    *,
    enabled: bool = True,
) -> None:
    """Say what this collector's `ca/` holds at start, within a second or two of a change to
    its files (IT copies `ca/` or runs `tls rotate` while it serves) and every `every`
    seconds, by the database server's clock where there is one (the readers judge by it),
    until `stop`. A failure is logged once until it passes and tried again; it never stops
    the collector."""
    if not enabled:  # another process of `serve --workers` says it for this folder
        return
    failing = False
    # A full disk or a database that takes no writes: said once, as every task of `serve` says
    # it (refused_writes), not as an error at each beat.
    refused = RefusedWrites("saying which CAs this collector holds (for a CA rollover)")
    said_at = -every
    said_files: tuple[tuple[int, int] | None, ...] = ()

    def say() -> None:
        moment = store.coordination.database_clock()
        store.identity.keep_ca_holding(holding_of(config, moment or utcnow()))

    loop = asyncio.get_running_loop()
    while not stop.is_set():
        files = _stamps(config)
        if files != said_files or loop.time() - said_at >= every:
            try:
                await in_db(say)
                said_at, said_files = loop.time(), files
                refused.wrote()
                if failing:
                    log.info("saying which CAs this collector holds works again")
                failing = False
            except Exception as exc:  # the next beat tries again
                # A refused write (a full disk, a read-only database) is said by `refused`.
                if not refused.failed(exc) and not failing:
                    log.error("could not say which CAs this collector holds (%s): a CA"
                              " rollover cannot see this collector meanwhile",
                              type(exc).__name__)  # fmt: skip
                    failing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LOOK_SECONDS)


def _stamps(config: CollectorConfig) -> tuple[tuple[int, int] | None, ...]:
    """The modification time and size of what `holding_of` reads: the `ca/` folder (a file
    added or removed) and its files, and the server certificate. A few stat() calls."""
    ca_dir = config.ca_cert.parent
    paths = [ca_dir, config.server_cert, *sorted(ca_dir.glob("*"))]
    stamps: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((info.st_mtime_ns, info.st_size))
    return tuple(stamps)


def others_said(
    config: CollectorConfig, store: Store, now: dt.datetime
) -> tuple[list[CaHolding], dt.datetime]:
    """What every other collector on the database said its `ca/` holds (not gone for good:
    GONE_AFTER), and the moment to judge them by: the database server's clock where there is
    one, which they said it by (else `now`). This collector's own row is left out: its folder
    is read directly, fresher. `Trust.other_collectors` (the rollover's steps) and
    `refuse_if_behind` (serve's start) both ask it."""
    moment = store.coordination.database_clock() or now
    own = collector_key(config)
    return [
        h for h in store.identity.ca_holdings(moment - GONE_AFTER) if h.collector != own
    ], moment


def serving(holdings: Sequence[CaHolding], now: dt.datetime) -> list[CaHolding]:
    """The collectors that said what they hold within `SERVING_WITHIN` of `now`."""
    return [h for h in holdings if h.seen >= now - SERVING_WITHIN]


def silent(holdings: Sequence[CaHolding], now: dt.datetime) -> list[CaHolding]:
    """The collectors that said it before, but not within `SERVING_WITHIN` (stopped?)."""
    return [h for h in holdings if h.seen < now - SERVING_WITHIN]


def lacking(holdings: Sequence[CaHolding], new: str) -> list[CaHolding]:
    """Those that do not trust the CA `new`: what `activate` waits for."""
    return [h for h in holdings if new not in h.trusted]


def not_switched(holdings: Sequence[CaHolding], new: str) -> list[CaHolding]:
    """Those that do not both sign with `new` and present a server certificate it signed:
    what `finish` waits for."""
    return [h for h in holdings if h.signing != new or h.server_issuer != new]


def _ca(issuer: str | None, generations: dict[str, int]) -> str | Said:
    from devposture.collector.issuing_ca import ca_named  # noqa: PLC0415

    return said("an unknown CA") if issuer is None else ca_named(issuer, generations)


def _cas(trusted: Sequence[str], generations: dict[str, int]) -> str | Said:
    return enumeration(_ca(t, generations) for t in trusted) or said("no CA it can read")


def trusts_line(holding: CaHolding, generations: dict[str, int], day: Day) -> Said:
    """One collector `activate` waits for: who, when it last said, what it trusts."""
    return said(
        "  {host} ({address}), as it said at {seen}: trusts {cas}",
        host=holding.host, address=holding.address, seen=day(holding.seen),
        cas=_cas(holding.trusted, generations),
    )  # fmt: skip


def switched_line(holding: CaHolding, generations: dict[str, int], day: Day) -> Said:
    """One collector `finish` waits for: who, when it last said, what it signs with and
    which CA signed its server certificate."""
    return said(
        "  {host} ({address}), as it said at {seen}: signs with {signing}; its server"
        " certificate is from {server}",
        host=holding.host, address=holding.address, seen=day(holding.seen),
        signing=_ca(holding.signing, generations),
        server=_ca(holding.server_issuer, generations),
    )  # fmt: skip


def silent_line(holding: CaHolding, day: Day) -> Said:
    """One collector that has stopped saying what it holds."""
    return said("  {host} ({address}), last said at {seen}", host=holding.host,
                address=holding.address, seen=day(holding.seen))  # fmt: skip


def activate_refusal(waiting: Sequence[CaHolding], generations: dict[str, int], day: Day) -> Said:
    """Why `activate` refuses: which collectors do not hold the new CA, and the fix."""
    return lines(
        said(
            "Not every collector on this database holds the new CA yet ({count} without it):"
            " they hand agents only the previous CA when they renew, and those agents could"
            " not verify the collectors once the new CA signs.", count=len(waiting),
        ),
        *(trusts_line(h, generations, day) for h in waiting),
        said(
            "Copy this collector's ca/ folder to each of them (docs/scaling.md); each says"
            " what it holds within a minute. Then activate again, once every agent has renewed"
            " since. --force activates anyway, at that cost",
        ),
    )  # fmt: skip


def finish_refusal(waiting: Sequence[CaHolding], generations: dict[str, int], day: Day) -> Said:
    """Why `finish` refuses: which collectors still sign with, or present a server
    certificate from, another CA than the new one, and the fix."""
    return lines(
        said(
            "Not every collector on this database signs with the new CA and presents a server"
            " certificate from it ({count} not yet): once the previous CA is no longer trusted,"
            " agents could not verify them, or would be refused with the certificates they"
            " sign.", count=len(waiting),
        ),
        *(switched_line(h, generations, day) for h in waiting),
        said(
            "On each of them: copy this collector's ca/ folder to it (docs/scaling.md), then"
            " run `devposture-collector tls rotate` there; each says what it holds within a"
            " minute. Then finish again. --force finishes anyway, at that cost",
        ),
    )  # fmt: skip


class BehindTheRollover(Worded):
    """This collector's `ca/` (or its server certificate) is behind the CA rollover that the
    collectors serving on its database have made. A collector that missed the copies while
    it was stopped, started again, would refuse the agents the others renewed, sign
    certificates the others refuse, or present a server certificate agents no longer trust:
    the devices it answers go dark one by one. It is refused at start instead, naming what
    differs and the fix; `status` alone named it, and only to whoever ran it."""


def behind_by(
    mine: CaHolding, others: Sequence[CaHolding], generations: dict[str, int]
) -> list[Said]:
    """How this collector's holding (`mine`) is behind each of `others` (those serving now):
    one line per difference that breaks agents, none when it is not behind. A difference
    counts against this collector only where the other holds the newer CA: one this folder
    never had (a later rollover's), or of a later generation (`generations`, this folder's
    own CAs, retired ones included). So the collector ahead (one that ran `activate` or
    `finish --force` while another missed the copy) starts, and the one behind is told. Only
    what each side could read is compared: an unknown CA is not taken for another. A CA
    staged elsewhere but not copied here yet breaks nothing (`activate` waits for that)."""

    def newer(ca: str, than: str | None) -> bool:
        return ca not in generations or generations[ca] > generations.get(than or "", 0)

    newest_trusted = max(mine.trusted, key=lambda ca: generations.get(ca, 0), default=None)
    found: list[Said] = []
    for other in others:
        where = {"host": other.host, "address": other.address}
        signing = other.signing
        if (
            signing
            and mine.trusted
            and signing not in mine.trusted
            and newer(signing, newest_trusted)
        ):
            found.append(said(
                "  {host} ({address}) signs with {ca}, which this collector does not trust:"
                " the agents renewed there would be refused here",
                ca=_ca(signing, generations), **where,
            ))  # fmt: skip
        for own, why in (
            (mine.signing, said("which this collector signs with: the agents renewed here"
                                " would be refused there")),
            (mine.server_issuer, said("which issued this collector's server certificate:"
                                      " agents given the CAs it trusts could not verify this"
                                      " collector")),
        ):  # fmt: skip
            if (
                own
                and other.trusted
                and own not in other.trusted
                and any(newer(ca, own) for ca in other.trusted)
            ):
                found.append(said("  {host} ({address}) no longer trusts {ca}, {why}",
                                  ca=_ca(own, generations), why=why, **where))  # fmt: skip
    return found


def refuse_if_behind(config: CollectorConfig, store: Store) -> None:
    """BehindTheRollover when this collector's `ca/` is behind what the collectors serving on
    its database now hold (`behind_by`); nothing when it is alone or none is serving."""
    from devposture.collector.issuing_ca import ca_generations  # noqa: PLC0415

    said_by_others, moment = others_said(config, store, utcnow())
    others = serving(said_by_others, moment)
    if not others:
        return
    found = behind_by(holding_of(config, moment), others, ca_generations(config.ca_cert.parent))
    if found:
        raise BehindTheRollover(lines(
            said(
                "This collector's ca/ folder is behind the CA rollover of the other collectors"
                " serving on its database (a copy of ca/ missed while it was stopped?):",
            ),
            *found,
            said(
                "Copy the ca/ folder of a collector serving now to {folder}, run"
                " `devposture-collector tls rotate --data {data}`, and start this collector"
                " again (docs/scaling.md).",
                folder=config.ca_cert.parent, data=config.data_dir,
            ),
        ))  # fmt: skip


def status_lines(stage: str, others: Sequence[CaHolding], moment: dt.datetime, new: str, *,
                 generations: dict[str, int], day: Day) -> list[Said]:  # fmt: skip
    """What `ca rollover status` says of the other collectors in a rollover's stage
    ("staged" or "activated"): those the next step waits for, and those that have stopped
    saying what they hold (not waited for: one that serves again must get `ca/` first)."""
    found: list[Said] = []
    now_serving = serving(others, moment)
    if stage == "staged":
        waiting = lacking(now_serving, new)
        if waiting:
            found.append(said(
                "Not every collector on this database holds the new CA yet ({count} without"
                " it): copy this collector's ca/ folder to each of them (docs/scaling.md), or"
                " `activate` refuses.", count=len(waiting),
            ))  # fmt: skip
            found += [trusts_line(h, generations, day) for h in waiting]
    else:
        waiting = not_switched(now_serving, new)
        if waiting:
            found.append(said(
                "Not every collector on this database signs with the new CA and presents a"
                " server certificate from it ({count} not yet): copy this collector's ca/"
                " folder to each of them (docs/scaling.md), then run `devposture-collector tls"
                " rotate` there, or `finish` refuses.", count=len(waiting),
            ))  # fmt: skip
            found += [switched_line(h, generations, day) for h in waiting]
    stopped = silent(others, moment)
    if stopped:
        found.append(said(
            "Collectors that have not said which CAs they hold for over two minutes (stopped?):"
            " {count}. If one serves again, copy this collector's ca/ folder to it first.",
            count=len(stopped),
        ))  # fmt: skip
        found += [silent_line(h, day) for h in stopped]
    return found
