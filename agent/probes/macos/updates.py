"""OS updates on macOS: pending Apple updates from `softwareupdate -l`.

`softwareupdate -l` asks Apple's catalog, so it gets a longer time budget than other tools. A
catalog that could not be read is COMMAND_FAILED with the tool's own line, never "0 pending":
softwareupdate may exit 0 without reaching its catalog (field notes). Which pending updates
count as security updates is the rule documented in agent.parsers.macos.softwareupdate.

Not reported yet, for want of real recordings to test parsers on: last_checked and
automatic_updates (/Library/Preferences/com.apple.SoftwareUpdate), last_installed
(/Library/Receipts/InstallHistory.plist). reboot_required stays unset: "Action: restart" is
about installing a pending update, not about a restart already owed.
"""

from __future__ import annotations

from agent.parsers.macos.softwareupdate import parse_update_list, security_updates
from agent.probes.outcome import FactOutcome, ProbeContext, ProbeFailure
from devposture.v1 import devposture_pb2 as pb

MAX_NAMES = 50
LIST_TIMEOUT = 120.0


def probe(ctx: ProbeContext) -> FactOutcome:
    timeout = max(ctx.config.command_timeout, LIST_TIMEOUT)
    result = ctx.host.run(["softwareupdate", "-l"], timeout)
    listing = parse_update_list(result.stdout_text(), result.stderr_text())
    if listing.catalog_error:
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_COMMAND_FAILED,
            f"softwareupdate could not read Apple's update catalog: {listing.catalog_error}",
            "softwareupdate",
        )
    security = sorted({u.label for u in security_updates(listing.updates)})
    fact = pb.OsUpdatesFact(
        source="softwareupdate",
        pending_total=len(listing.updates),
        pending_security=len(security),
        pending_security_names=security[:MAX_NAMES],
    )
    return FactOutcome(fact)
