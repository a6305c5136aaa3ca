"""OS updates on Windows: the last installed update and the automatic-update policy.

last_installed is the newest InstalledOn of `Get-HotFix` (Win32_QuickFixEngineering), a date
without time, reported as 00:00 UTC of that day. automatic_updates comes from the policy key
HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU (agent.parsers.windows.
update_policy): no key means the Windows 10/11 default, which installs updates automatically.

Pending updates (count, security ones, how long pending) are not read yet: they need the
Windows Update Agent's COM search (Microsoft.Update.Session, IsInstalled=0), and no real
recording of its output exists in the fixtures to test a parser against. The fact therefore
leaves pending_total and pending_security unset and carries a NOT_SUPPORTED error for the
"windows-update-agent" source, so the collector reads them as unknown, never as zero.
reboot_required is not read either (left unset).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from agent.host import HostError
from agent.parsers import ParseError
from agent.parsers.windows.hotfix import parse_hotfixes
from agent.parsers.windows.reg_query import key_missing, parse_reg_query
from agent.parsers.windows.text import decode_output
from agent.parsers.windows.update_policy import automatic_updates
from agent.probes.outcome import FactOutcome, ProbeContext, error, source_error
from agent.probes.windows.commands import console_encoding, powershell, run_text
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_OS_UPDATES
HOTFIX = powershell("Get-HotFix")
AU_KEY = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU"
REG_AU = ["reg", "query", AU_KEY]
_REG_MISSING_EXIT = 1


def _automatic(ctx: ProbeContext) -> bool | None:
    result = ctx.host.run(REG_AU, ctx.config.command_timeout, {0, _REG_MISSING_EXIT})
    encoding = console_encoding(ctx)
    printed = decode_output(result.stdout, encoding) + "\n" + decode_output(result.stderr, encoding)
    if result.returncode == _REG_MISSING_EXIT:
        if not key_missing(printed):
            raise ParseError("reg query: exit 1 without the key-not-found message")
        return automatic_updates(None)
    return automatic_updates(parse_reg_query(printed))


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.OsUpdatesFact(source="windows-update")
    errors = [
        error(
            FACT,
            pb.PROBE_ERROR_CODE_NOT_SUPPORTED,
            "pending Windows updates are not read yet (Windows Update Agent search)",
            "windows-update-agent",
        )
    ]
    read_any = False
    try:
        dates = [h.installed_on for h in parse_hotfixes(run_text(ctx, HOTFIX)) if h.installed_on]
        if dates:
            fact.last_installed.FromDatetime(datetime.combine(max(dates), time(), UTC))
        read_any = True
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "Get-HotFix", exc))
    try:
        automatic = _automatic(ctx)
        if automatic is not None:
            fact.automatic_updates = automatic
        read_any = True
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "reg AU policy", exc))
    return FactOutcome(fact if read_any else None, errors)
