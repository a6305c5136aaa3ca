"""Chat backups on Windows: the shared scan over the Windows layouts (agent.probes.chat_layouts)."""

from __future__ import annotations

from devposture.agent.probes.chat_backups import scan
from devposture.agent.probes.chat_layouts import WINDOWS
from devposture.agent.probes.outcome import FactOutcome, ProbeContext


def probe(ctx: ProbeContext) -> FactOutcome:
    return scan(ctx, WINDOWS)
