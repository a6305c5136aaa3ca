"""`Get-HotFix` (Win32_QuickFixEngineering) as JSON: the updates Windows has installed.

The probe runs the command mondoohq/cnquery runs, whose recorded outputs are the fixtures:
    Get-HotFix | Select-Object -Property Status, Description, HotFixId, Caption, InstalledOn,
    InstalledBy | ConvertTo-Json
Asked this way, InstalledOn comes locale-free (agent.parsers.windows.psjson) instead of in the
culture's short date ("4/4/2018", "27/09/2019", "18-10-2022"). Windows records only the day of
an install; PowerShell turns it into local midnight, and ConvertTo-Json into the UTC instant of
that midnight (2019-09-07 00:00 in Spain reads 2019-09-06T22:00Z), which is what is returned.
An update without InstalledOn (Windows did not record it) has none; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.psjson import field, json_datetime, json_objects


@dataclass(frozen=True)
class HotFix:
    hotfix_id: str
    description: str
    installed_at: datetime | None  # aware UTC; None when Windows did not record it


def parse_hotfixes(text: str) -> list[HotFix]:
    """Every update; an empty output (ConvertTo-Json prints nothing for no objects) is none."""
    hotfixes = []
    for obj in json_objects(text, "Get-HotFix"):
        hotfix_id = field(obj, "HotFixId")
        if not isinstance(hotfix_id, str) or not hotfix_id:
            raise ParseError("Get-HotFix: an update without HotFixId")
        description = field(obj, "Description")
        hotfixes.append(
            HotFix(
                hotfix_id,
                description if isinstance(description, str) else "",
                json_datetime(field(obj, "InstalledOn")),
            )
        )
    return hotfixes
