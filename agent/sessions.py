"""Wi-Fi sessions across observations: when each network was joined and left, and whether and
when a VPN came up while on it.

A probe sees only the present ("associated with X now, VPN up or not"). Clause 6.3.2 is about
the past: was every public network used with a VPN? So each observation is merged into a log
kept in the agent's state folder:

* a network seen that has no open session opens one, started at this observation;
* an open session whose network is no longer seen is closed, ended at this observation;
* an open session on which a VPN is now up records the first time it was seen up.

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

from google.protobuf.timestamp_pb2 import Timestamp

from agent.state import write_atomic
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)
MAX_SESSIONS = 500


@dataclass(frozen=True)
class Session:
    interface: str
    network_id: str
    security: int
    classification: int
    started_at: str
    ended_at: str | None = None
    vpn_up_at: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.interface, self.network_id

    def to_proto(self) -> pb.WifiSession:
        session = pb.WifiSession(
            network_id=self.network_id,
            security=self.security,  # type: ignore[arg-type]
            classification=self.classification,  # type: ignore[arg-type]
            interface=self.interface,
            vpn_up=self.vpn_up_at is not None,
        )
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


def merge(
    sessions: list[Session], now: datetime, seen: list[pb.WifiSession], vpn_active: bool
) -> list[Session]:
    """The log after one observation (pure: the same inputs always give the same log)."""
    at = now.isoformat()
    current = {(s.interface, s.network_id): s for s in seen}
    merged: list[Session] = []
    open_keys: set[tuple[str, str]] = set()
    for session in sessions:
        if session.ended_at is not None:
            merged.append(session)
        elif session.key in current:
            vpn_now = vpn_active and session.vpn_up_at is None
            merged.append(replace(session, vpn_up_at=at) if vpn_now else session)
            open_keys.add(session.key)
        else:
            merged.append(replace(session, ended_at=at))
    for key, observed in current.items():
        if key not in open_keys:
            merged.append(
                Session(
                    interface=observed.interface,
                    network_id=observed.network_id,
                    security=observed.security,
                    classification=observed.classification,
                    started_at=at,
                    vpn_up_at=at if vpn_active else None,
                )
            )
    # Bounded: the oldest closed sessions go first (they were the longest waiting anyway).
    while len(merged) > MAX_SESSIONS:
        closed = [s for s in merged if s.ended_at is not None]
        merged.remove(closed[0] if closed else merged[0])
    return merged


def delivered(sessions: list[Session], up_to: datetime) -> list[Session]:
    """The log after a report collected at `up_to` was acknowledged."""
    return [s for s in sessions if s.ended_at is None or datetime.fromisoformat(s.ended_at) > up_to]


class SessionLog:
    """The session log in the state folder (`wifi-sessions.json`), replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Session]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [Session(**item) for item in raw]
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
        sessions = merge(self.load(), now, list(report.wifi.sessions), vpn_active)
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
