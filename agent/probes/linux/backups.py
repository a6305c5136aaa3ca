"""Chat backups on Linux: the shared scan over the Linux layouts (agent.probes.chat_layouts)."""

from __future__ import annotations

from devposture.agent.probes.chat_backups import scan
from devposture.agent.probes.chat_layouts import LINUX
from devposture.agent.probes.outcome import FactOutcome, ProbeContext


def probe(ctx: ProbeContext) -> FactOutcome:
    return scan(ctx, LINUX)
