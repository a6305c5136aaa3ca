"""Chat backups on Windows: the shared scan over the Windows default locations."""

from __future__ import annotations

from agent.probes.backup_locations import WINDOWS
from agent.probes.chat_backups import scan
from agent.probes.outcome import FactOutcome, ProbeContext


def probe(ctx: ProbeContext) -> FactOutcome:
    return scan(ctx, WINDOWS)
