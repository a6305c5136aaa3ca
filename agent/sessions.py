"""Wi-Fi sessions across observations: when each network was joined and left, and whether and
when a VPN came up while on it.

A probe sees only the present ("associated with X now, VPN up or not"). Clause 6.3.2 is about
the past: was every public network used with a VPN? So each observation is merged into a log
kept in the agent's state folder:

* a network seen that has no open session opens one, started at this observation;
* an open session whose network is no longer seen is closed, ended at this observation;
* an open session on which a VPN is now up records the first time it was seen up;
* an open session whose network shows more now than before keeps its start and gains it.

The last rule is about signals that arrive after the association: NetworkManager finds the
captive portal seconds after joining, Windows files a network under its category once it has
identified it. Such a network was public from the moment it was joined, so the session keeps
its start (the VPN's delay is counted from there) and becomes PUBLIC, with the reasons of
every observation. A session never becomes less public: the portal's login page going away
after the user signed in does not make the hotspot private. Because a public network is
reported by name and another one by a keyed hash, the same network is recognised across the
change by the hash of its name (`identity`), for which the log needs the probes' hash key.

Sessions stay in the log until a report carrying them is acknowledged; a closed session is
then dropped, an open one stays (and is reported again, with the same start, until it ends).
The watcher (agent.watch) observes within seconds of a network change, so start and end
times are accurate to its polling interval.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.probes.wifi_classify import hashed_network_id
from devposture.agent.state import write_atomic
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)
MAX_SESSIONS = 500
_PUBLIC = pb.NETWORK_CLASS_PUBLIC


@dataclass(frozen=True)
class Session:
    interface: str
    network_id: str
    security: int
    classification: int
    started_at: str
    ended_at: str | None = None
    vpn_up_at: str | None = None
    # Added with classification reasons; a log written before has none of them.
    classification_reasons: tuple[str, ...] = ()
    network_category: str = ""
    captive_portal: bool | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.interface, self.network_id

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Session:
        """One entry of the log file (TypeError for anything that is not one)."""
        fields = dict(item)
        reasons = fields.get("classification_reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise TypeError("classification_reasons is not a list of texts")
        fields["classification_reasons"] = tuple(reasons)
        return cls(**fields)

    @classmethod
    def observed(cls, session: pb.WifiSession, at: str, vpn_active: bool) -> Session:
        return cls(
            interface=session.interface,
            network_id=session.network_id,
            security=session.security,
            classification=session.classification,
            started_at=at,
            vpn_up_at=at if vpn_active else None,
            classification_reasons=tuple(session.classification_reasons),
            network_category=session.network_category,
            captive_portal=session.captive_portal if session.HasField("captive_portal") else None,
        )

    def to_proto(self) -> pb.WifiSession:
        session = pb.WifiSession(
            network_id=self.network_id,
            security=self.security,  # type: ignore[arg-type]
            classification=self.classification,  # type: ignore[arg-type]
            interface=self.interface,
            vpn_up=self.vpn_up_at is not None,
            classification_reasons=self.classification_reasons,
            network_category=self.network_category,
        )
        if self.captive_portal is not None:
            session.captive_portal = self.captive_portal
        session.started_at.CopyFrom(_timestamp(self.started_at))
        if self.ended_at is not None:
            session.ended_at.CopyFrom(_timestamp(self.ended_at))
        if self.vpn_up_at is not None:
            session.vpn_up_at.CopyFrom(_timestamp(self.vpn_up_at))
        return session


def _timestamp(iso: str) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(iso))
    return ts


def identity(network_id: str, classification: int, key: bytes) -> str:
    """The same string for one network whatever its class: the keyed hash of its name ("" when
    the OS hid the name). Without the key, the id itself (no match across a change of class)."""
    if not key or classification == pb.NETWORK_CLASS_OTHER or not network_id:
        return network_id
    return hashed_network_id(network_id, key)


def _merged_portal(before: bool | None, now: bool | None) -> bool | None:
    if before or now:
        return True
    return now if now is not None else before


def upgraded(session: Session, seen: Session) -> Session:
    """An open session after its network was seen again: public once public (with the
    reasons of every observation that found it public), a portal once seen, the newest
    category Windows gave. Otherwise the newest observation's class and reasons."""
    public = [s for s in (seen, session) if s.classification == _PUBLIC]
    if public:
        reasons: tuple[str, ...] = ()
        for found in reversed(public):  # the session's reasons first, then the new ones
            reasons += tuple(r for r in found.classification_reasons if r not in reasons)
        named = public[0]
    else:
        named, reasons = seen, seen.classification_reasons
    return replace(
        session,
        network_id=named.network_id,
        classification=named.classification,
        classification_reasons=reasons,
        network_category=seen.network_category or session.network_category,
        captive_portal=_merged_portal(session.captive_portal, seen.captive_portal),
    )


def merge(
    sessions: list[Session],
    now: datetime,
    seen: list[pb.WifiSession],
    vpn_active: bool,
    hash_key: bytes = b"",
) -> list[Session]:
    """The log after one observation (pure: the same inputs always give the same log)."""
    at = now.isoformat()

    def key(interface: str, network_id: str, classification: int) -> tuple[str, str]:
        return interface, identity(network_id, classification, hash_key)

    current = {
        key(s.interface, s.network_id, s.classification): Session.observed(s, at, vpn_active)
        for s in seen
    }
    merged: list[Session] = []
    open_keys: set[tuple[str, str]] = set()
    for session in sessions:
        session_key = key(session.interface, session.network_id, session.classification)
        if session.ended_at is not None:
            merged.append(session)
        elif session_key in current and session_key not in open_keys:
            kept = upgraded(session, current[session_key])
            if vpn_active and kept.vpn_up_at is None:
                kept = replace(kept, vpn_up_at=at)
            merged.append(kept)
            open_keys.add(session_key)
        else:
            merged.append(replace(session, ended_at=at))
    merged.extend(s for k, s in current.items() if k not in open_keys)
    # Bounded: the oldest closed sessions go first (they were the longest waiting anyway).
    while len(merged) > MAX_SESSIONS:
        closed = [s for s in merged if s.ended_at is not None]
        merged.remove(closed[0] if closed else merged[0])
    return merged


def delivered(sessions: list[Session], up_to: datetime) -> list[Session]:
    """The log after a report collected at `up_to` was acknowledged."""
    return [s for s in sessions if s.ended_at is None or datetime.fromisoformat(s.ended_at) > up_to]


class SessionLog:
    """The session log in the state folder (`wifi-sessions.json`), replaced atomically.
    `hash_key` is the key the probes hash network names with (ProbeConfig.network_hash_key):
    with it a session is recognised when its network's class changes (see `upgraded`)."""

    def __init__(self, path: Path, hash_key: bytes = b"") -> None:
        self.path = path
        self.hash_key = hash_key

    def load(self) -> list[Session]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [Session.from_json(item) for item in raw]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            # A damaged log must not stop reporting: set it aside and start again.
            log.warning("Wi-Fi session log unreadable (%s); starting a new one", type(exc).__name__)
            self.path.replace(self.path.with_suffix(".damaged"))
            return []

    def save(self, sessions: list[Session]) -> None:
        data = json.dumps([asdict(s) for s in sessions], indent=1).encode("utf-8")
        write_atomic(self.path, data, 0o600)

    def apply(self, report: pb.PostureReport, save: bool = True) -> None:
        """Merge the report's observation into the log and put the whole log in the report.
        With save=False (a preview, `collect --json`) the log on disk is left unchanged."""
        if not report.HasField("wifi"):
            return  # Wi-Fi could not be read: the error says so; the log is left as it was.
        now = report.collected_at.ToDatetime(tzinfo=UTC)
        vpn_active = report.HasField("vpn") and report.vpn.active
        sessions = merge(self.load(), now, list(report.wifi.sessions), vpn_active, self.hash_key)
        if save:
            self.save(sessions)
        del report.wifi.sessions[:]
        report.wifi.sessions.extend(s.to_proto() for s in sessions)

    def acknowledged(self, report: pb.PostureReport) -> None:
        """Forget the closed sessions a now-acknowledged report carried."""
        up_to = report.collected_at.ToDatetime(tzinfo=UTC)
        sessions = self.load()
        remaining = delivered(sessions, up_to)
        if len(remaining) != len(sessions):
            self.save(remaining)
