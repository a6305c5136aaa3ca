"""OS updates on Windows from three sources, each read and reported on its own:

  * pending updates: the Windows Update Agent's own search (COM Microsoft.Update.Session,
    `IsInstalled=0 and Type='Software'`), run as UPDATE_SEARCH_SCRIPT (agent/probes/commands.py)
    through `powershell.exe -EncodedCommand`. The script and its command line are taken
    unchanged from mondoohq/cnquery, whose recorded outputs of exactly this command are the fixtures
    (tests/fixtures/windows/README.md). agent.parsers.windows.update_search reads its JSON and
    holds the security rule (an MSRC rating, or the "Security Updates" classification). A
    search that failed is COMMAND_FAILED with the HRESULT, and leaves the pending counts unset:
    the script exits 0 even then, so the answer is judged by what it printed, never by the
    exit status. The search asks the update service online, hence its longer time budget.
  * last_installed: the newest InstalledOn of `Get-HotFix` (Win32_QuickFixEngineering), asked
    for as JSON (HOTFIX, the command mondoohq/cnquery runs) so that the date comes without the
    machine's culture. Windows records the day only; ConvertTo-Json gives the UTC instant of
    that day's local midnight, which is reported as it is (agent.parsers.windows.hotfix).
  * automatic_updates: the policy key
    HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU
    (agent.parsers.windows.update_policy): no key means the Windows 10/11 default, which
    installs updates automatically.

Left unset, never guessed: oldest_pending_since (the search output has no date),
last_checked, and reboot_required. The per-update RebootRequired says whether installing
that update will need a restart, not whether the machine owes one now; the WindowsUpdate
"Auto Update\\RebootRequired" key has no recorded output here, and its absence is no proof
(Windows 10 20H2 and later remove it when the user restarts without updating,
imabdk/Toast-Notification-Script#43).
"""

from __future__ import annotations

from devposture.agent.host import CommandFailedError, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.hotfix import parse_hotfixes
from devposture.agent.parsers.windows.reg_query import key_missing, parse_reg_query
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.parsers.windows.update_policy import automatic_updates
from devposture.agent.parsers.windows.update_search import parse_update_search, security_updates
from devposture.agent.probes.commands import HOTFIX, REG_AU, UPDATE_SEARCH
from devposture.agent.probes.outcome import (
    FactOutcome,
    ProbeContext,
    error,
    from_sources,
    source_error,
)
from devposture.agent.probes.windows.commands import console_encoding, run_text
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_OS_UPDATES
_REG_MISSING_EXIT = 1
SEARCH_SOURCE = "windows-update-agent"
SEARCH_TIMEOUT = 300.0
MAX_NAMES = 50


def _automatic(ctx: ProbeContext) -> bool | None:
    result = ctx.host.run(REG_AU, ctx.config.command_timeout, {0, _REG_MISSING_EXIT})
    encoding = console_encoding(ctx)
    printed = decode_output(result.stdout, encoding) + "\n" + decode_output(result.stderr, encoding)
    if result.returncode == _REG_MISSING_EXIT:
        if not key_missing(printed):
            raise ParseError("reg query: exit 1 without the key-not-found message")
        return automatic_updates(None)
    return automatic_updates(parse_reg_query(printed))


def _read_pending(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    encoding = console_encoding(ctx)
    timeout = max(ctx.config.command_timeout, SEARCH_TIMEOUT)
    try:
        result = ctx.host.run(UPDATE_SEARCH, timeout)
        search = parse_update_search(
            decode_output(result.stdout, encoding), decode_output(result.stderr, encoding)
        )
    except CommandFailedError as exc:
        # powershell.exe itself failed (it exits 0 when only the search did).
        search = parse_update_search("", decode_output(exc.stderr, encoding))
        reason = search.failure or f"{UPDATE_SEARCH[0]} exited with status {exc.returncode}"
        errors.append(error(FACT, pb.PROBE_ERROR_CODE_COMMAND_FAILED, reason, SEARCH_SOURCE))
        return False
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, SEARCH_SOURCE, exc))
        return False
    if search.failure:
        failed = pb.PROBE_ERROR_CODE_COMMAND_FAILED
        errors.append(error(FACT, failed, search.failure, SEARCH_SOURCE))
        return False
    security = security_updates(search.updates)
    fact.pending_total = len(search.updates)
    fact.pending_security = len(security)
    fact.pending_security_names.extend(sorted({u.name for u in security})[:MAX_NAMES])
    return True


def _read_hotfixes(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        fixes = parse_hotfixes(run_text(ctx, HOTFIX))
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "Get-HotFix", exc))
        return False
    dates = [fix.installed_at for fix in fixes if fix.installed_at is not None]
    if dates:
        fact.last_installed.FromDatetime(max(dates))
    return True


def _read_policy(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        automatic = _automatic(ctx)
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "reg AU policy", exc))
        return False
    if automatic is not None:
        fact.automatic_updates = automatic
    return True


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.OsUpdatesFact(source="windows-update")
    return from_sources(ctx, fact, (_read_pending, _read_hotfixes, _read_policy))
