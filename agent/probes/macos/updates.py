"""OS updates on macOS from three sources, each read and reported on its own:

  * automatic_updates and last_checked:
    `defaults read /Library/Preferences/com.apple.SoftwareUpdate` (the rule is documented in
    agent.parsers.macos.softwareupdate_prefs: the automatic check and the security-update
    installs both on, an absent key being macOS's default, on). last_checked is
    LastSuccessfulDate. It is read first: `softwareupdate -l` rescans and rewrites these dates
    (usnistgov/macos_security#537), so reading afterwards would report the probe's own check
    instead of the Mac's. A missing domain is NO_SOURCE, never "off". Settings pushed by a
    configuration profile live in /Library/Managed Preferences and are not seen here.
  * pending updates: `softwareupdate -l`, with a longer time budget because it asks Apple's
    catalog. A catalog that could not be read is COMMAND_FAILED with the tool's own line and
    leaves the pending counts unset, never "0 pending": softwareupdate may exit 0 without
    reaching its catalog (field notes). Which pending updates are security updates is the rule
    in agent.parsers.macos.softwareupdate: a point update of the installed major version
    counts, an upgrade to a later major version does not. The installed version is the
    product version HostInfo reports (the host layer reads SystemVersion.plist), so no
    command is added; a version that cannot be read leaves the counts unset with a
    PARSE_ERROR of this source when the list holds a macOS entry.
  * last_installed: the newest macOS or security install in `softwareupdate --history`
    (agent.parsers.macos.softwareupdate_history: which rows count, local dates taken as UTC).

A source that fails adds its error and leaves its fields unset; when no source could be read
there is no fact, only the errors. reboot_required stays unset: "Action: restart" is about
installing a pending update, not about a restart already owed.
"""

from __future__ import annotations

from devposture.agent.host import CommandFailedError, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.macos.softwareupdate import parse_update_list, security_updates
from devposture.agent.parsers.macos.softwareupdate_history import newest_os_install, parse_history
from devposture.agent.parsers.macos.softwareupdate_prefs import domain_missing, parse_prefs
from devposture.agent.probes.commands import (
    SOFTWAREUPDATE_HISTORY,
    SOFTWAREUPDATE_LIST,
    SOFTWAREUPDATE_PREFS,
    SOFTWAREUPDATE_PREFS_DOMAIN,
)
from devposture.agent.probes.outcome import (
    FactOutcome,
    ProbeContext,
    error,
    from_sources,
    source_error,
)
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_OS_UPDATES
MAX_NAMES = 50
LIST_TIMEOUT = 120.0
PREFS_SOURCE = "com.apple.SoftwareUpdate"
LIST_SOURCE = "softwareupdate"
HISTORY_SOURCE = "softwareupdate --history"


def _read_prefs(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        result = ctx.host.run(SOFTWAREUPDATE_PREFS, ctx.config.command_timeout)
        prefs = parse_prefs(result.stdout_text())
    except CommandFailedError as exc:
        if domain_missing(exc.stderr.decode("utf-8", errors="replace")):
            message = (
                f"{SOFTWAREUPDATE_PREFS_DOMAIN} does not exist: Software Update has written no"
                " settings, so whether it installs security updates by itself is unknown"
            )
            errors.append(error(FACT, pb.PROBE_ERROR_CODE_NO_SOURCE, message, PREFS_SOURCE))
        else:
            errors.append(source_error(FACT, PREFS_SOURCE, exc))
        return False
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, PREFS_SOURCE, exc))
        return False
    fact.automatic_updates = prefs.automatic_updates
    if prefs.last_successful is not None:
        fact.last_checked.FromDatetime(prefs.last_successful)
    return True


def _read_pending(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    timeout = max(ctx.config.command_timeout, LIST_TIMEOUT)
    try:
        result = ctx.host.run(SOFTWAREUPDATE_LIST, timeout)
        listing = parse_update_list(result.stdout_text(), result.stderr_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, LIST_SOURCE, exc))
        return False
    if listing.catalog_error:
        message = f"softwareupdate could not read Apple's update catalog: {listing.catalog_error}"
        errors.append(error(FACT, pb.PROBE_ERROR_CODE_COMMAND_FAILED, message, LIST_SOURCE))
        return False
    try:
        # The installed version is the one HostInfo reports: the host layer's product version
        # (SystemVersion.plist), recorded and replayed with the bundle; no command of its own.
        product_version = ctx.host.host_info().release
        security = sorted({u.label for u in security_updates(listing.updates, product_version)})
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, LIST_SOURCE, exc))
        return False
    fact.pending_total = len(listing.updates)
    fact.pending_security = len(security)
    fact.pending_security_names.extend(security[:MAX_NAMES])
    return True


def _read_history(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        result = ctx.host.run(SOFTWAREUPDATE_HISTORY, ctx.config.command_timeout)
        installed = newest_os_install(parse_history(result.stdout_text()))
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, HISTORY_SOURCE, exc))
        return False
    if installed is not None:
        fact.last_installed.FromDatetime(installed)
    return True


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.OsUpdatesFact(source="softwareupdate")
    # Order matters: the preferences before `softwareupdate -l` rewrites them.
    return from_sources(ctx, fact, (_read_prefs, _read_pending, _read_history))
