"""OS updates on Linux: apt (Debian, Ubuntu) or dnf (Fedora, RHEL).

apt: pending updates from a simulated upgrade (no lock taken, nothing changed); security
updates are those from a "-security" archive. Only a machine that has such an archive can tell
(apt keeps each archive's Release file in /var/lib/apt/lists, named after it). Deepin and Kylin
V10 ship their fixes in their ordinary suites, and UOS's security archive is a suite like
"eagle/1060" that only UOS's own updater tells apart: there, while updates are pending, the
security count is left unknown with an error naming the machine's archives, never 0
(docs/linux-updates.md). With nothing pending at all, 0 is known everywhere. last_checked is
the update-success stamp that apt's daily job writes, else the newest Release file in
/var/lib/apt/lists (written by every `apt update`). last_installed is the modification time of
/var/log/apt/history.log (apt appends to it on every install, upgrade or removal).
automatic_updates is apt's merged configuration APT::Periodic::Unattended-Upgrade, and only
counts when unattended-upgrade is installed to act on it. reboot_required is read from
/var/run/reboot-required where something on the system writes that flag, and left unset where
nothing does.

dnf: `dnf -q -C updateinfo list --security` and `dnf -q -C check-update` from dnf's cache
(-C: the agent never downloads metadata; dnf's own makecache timer keeps it fresh).

Each source is read on its own (agent.probes.outcome.from_sources): one that is missing, fails
or prints something unknown is a ProbeError naming that source, and what the other sources read
stays in the fact. For dnf the security count (pending_security, from updateinfo) and the total
(pending_total, from check-update) are separate sources; for apt the simulated upgrade (both
counts; "apt archives" names the lists' archives when they leave the security count unknown),
apt's state files (last_checked, last_installed), its configuration (automatic_updates) and
the reboot flag. A count that was not read stays unset, never 0: the
collector then reads "did not tell", not "nothing pending".
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.apt import (
    AptPlan,
    parse_apt_config,
    parse_apt_simulate,
    parse_list_names,
    periodic_enabled,
)
from devposture.agent.parsers.dnf import parse_check_update, parse_updateinfo_security
from devposture.agent.probes.commands import (
    APT_CONFIG,
    APT_SIMULATE,
    DNF_CHECK_UPDATE,
    DNF_UPDATEINFO,
)
from devposture.agent.probes.outcome import (
    FactOutcome,
    ProbeContext,
    ProbeFailure,
    error,
    from_sources,
    source_error,
)
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_OS_UPDATES
MAX_NAMES = 50
_SUCCESS_STAMP = "/var/lib/apt/periodic/update-success-stamp"
_LISTS = "/var/lib/apt/lists"
_HISTORY = ("/var/log/apt/history.log", "/var/log/dpkg.log")
_REBOOT_FLAG = "/var/run/reboot-required"
_ARCHIVES = "apt archives"  # the source named when the security count cannot be told
_MAX_ARCHIVES_NAMED = 6
# What a simulated upgrade reads: installed packages, package lists, sources, pins, config.
# While none of these changes, its answer cannot change (see agent.host.command_cache).
APT_INPUTS = (
    "/var/lib/dpkg/status",
    _LISTS,
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d",
    "/etc/apt/preferences.d",
    "/etc/apt/apt.conf.d",
)
# Packages that write the reboot flag (Debian's unattended-upgrades, Ubuntu's update-notifier).
_REBOOT_FLAG_WRITERS = (
    "/etc/kernel/postinst.d/unattended-upgrades",
    "/usr/share/update-notifier/notify-reboot-required",
)

_DNF_UPDATES_PENDING = 100  # check-update's exit status when updates are pending


def _timestamp(epoch: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(epoch, UTC))
    return ts


def _last_checked(ctx: ProbeContext) -> float | None:
    host = ctx.host
    if host.exists(_SUCCESS_STAMP):
        return host.stat(_SUCCESS_STAMP).mtime
    releases = [n for n in host.list_dir(_LISTS) if n.endswith("Release")]
    return max((host.stat(f"{_LISTS}/{n}").mtime for n in releases), default=None)


def _last_installed(ctx: ProbeContext) -> float | None:
    for path in _HISTORY:
        if ctx.host.exists(path):
            return ctx.host.stat(path).mtime
    return None


def _without_security_archive(ctx: ProbeContext, plan: AptPlan) -> pb.ProbeError | None:
    """Why the security count cannot be told, or None when it can: something is pending, none
    of it comes from a security archive, and apt has no security archive at all (so "none of
    it" says nothing). The archives are read from the Release files' names in apt's lists,
    which are what the simulation planned from."""
    if not plan.pending_total or any(u.security for u in plan.upgrades):
        return None
    try:
        archives = parse_list_names(ctx.host.list_dir(_LISTS))
    except HostError as exc:
        return source_error(FACT, _ARCHIVES, exc)
    if any(a.security for a in archives):
        return None
    named = ", ".join(str(a) for a in archives[:_MAX_ARCHIVES_NAMED]) or "none"
    if len(archives) > _MAX_ARCHIVES_NAMED:
        named += f" and {len(archives) - _MAX_ARCHIVES_NAMED} more"
    reason = (
        f'no security archive configured (no "-security" suite among: {named}):'
        " apt cannot tell security updates apart"
    )
    return error(FACT, pb.PROBE_ERROR_CODE_NO_SOURCE, reason, _ARCHIVES)


def _apt_plan(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        result = ctx.host.run_cached(APT_SIMULATE, ctx.config.command_timeout, APT_INPUTS)
        plan = parse_apt_simulate(result.stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "apt-get", exc))
        return False
    fact.pending_total = plan.pending_total
    untold = _without_security_archive(ctx, plan)
    if untold is not None:
        errors.append(untold)  # the total stays; the security count is unknown, never 0
        return True
    security = sorted({u.name for u in plan.security})
    fact.pending_security = len(security)
    fact.pending_security_names.extend(security[:MAX_NAMES])
    return True


def _apt_state(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        checked = _last_checked(ctx)
        installed = _last_installed(ctx)
    except HostError as exc:
        errors.append(source_error(FACT, "apt-state", exc))
        return False
    if checked is not None:
        fact.last_checked.CopyFrom(_timestamp(checked))
    if installed is not None:
        fact.last_installed.CopyFrom(_timestamp(installed))
    return True


def _apt_config(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    host = ctx.host
    try:
        config = parse_apt_config(host.run(APT_CONFIG, ctx.config.command_timeout).stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "apt-config", exc))
        return False
    wanted = periodic_enabled(config.get("APT::Periodic::Unattended-Upgrade"))
    fact.automatic_updates = wanted and host.which("unattended-upgrade") is not None
    return True


def _reboot_flag(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    host = ctx.host
    try:
        if host.exists(_REBOOT_FLAG):
            fact.reboot_required = True
        elif any(host.exists(path) for path in _REBOOT_FLAG_WRITERS):
            fact.reboot_required = False
    except HostError as exc:
        errors.append(source_error(FACT, "reboot-required", exc))
        return False
    return True


def _dnf_security(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    try:
        result = ctx.host.run(DNF_UPDATEINFO, ctx.config.command_timeout)
        advisories = parse_updateinfo_security(result.stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "dnf updateinfo", exc))
        return False
    security = sorted({a.package for a in advisories})
    fact.pending_security = len(security)
    fact.pending_security_names.extend(security[:MAX_NAMES])
    return True


def _dnf_pending(ctx: ProbeContext, fact: pb.OsUpdatesFact, errors: list[pb.ProbeError]) -> bool:
    ok_codes = {0, _DNF_UPDATES_PENDING}
    try:
        result = ctx.host.run(DNF_CHECK_UPDATE, ctx.config.command_timeout, ok_codes)
        pending = parse_check_update(result.stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "dnf check-update", exc))
        return False
    if bool(pending) != (result.returncode == _DNF_UPDATES_PENDING):
        # Exit 100 with nothing listed, or 0 with a list: the two disagree, so neither is used.
        reason = f"dnf check-update exited {result.returncode} but listed {len(pending)} package(s)"
        errors.append(error(FACT, pb.PROBE_ERROR_CODE_PARSE_ERROR, reason, "dnf check-update"))
        return False
    fact.pending_total = len(set(pending))
    return True


def probe(ctx: ProbeContext) -> FactOutcome:
    if ctx.host.which("apt-get"):
        fact = pb.OsUpdatesFact(source="apt")
        return from_sources(ctx, fact, (_apt_plan, _apt_state, _apt_config, _reboot_flag))
    if ctx.host.which("dnf"):
        return from_sources(ctx, pb.OsUpdatesFact(source="dnf"), (_dnf_security, _dnf_pending))
    raise ProbeFailure(
        pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND,
        "no supported package manager is installed (apt-get, dnf)",
    )
