"""OS updates on Linux: apt (Debian, Ubuntu) or dnf (Fedora, RHEL).

apt: pending updates from a simulated upgrade (no lock taken, nothing changed); security
updates are those from a "-security" archive. last_checked is the update-success stamp that
apt's daily job writes, else the newest Release file in /var/lib/apt/lists (written by every
`apt update`). last_installed is the modification time of /var/log/apt/history.log (apt
appends to it on every install, upgrade or removal). automatic_updates is apt's merged
configuration APT::Periodic::Unattended-Upgrade, and only counts when unattended-upgrade is
installed to act on it. reboot_required is read from /var/run/reboot-required where something
on the system writes that flag, and left unset where nothing does.

dnf: `dnf -q -C updateinfo list --security` and `dnf -q -C check-update` from dnf's cache
(-C: the agent never downloads metadata; dnf's own makecache timer keeps it fresh).
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from agent.host import HostError
from agent.parsers import ParseError
from agent.parsers.apt import parse_apt_config, parse_apt_simulate, periodic_enabled
from agent.parsers.dnf import parse_check_update, parse_updateinfo_security
from agent.probes.outcome import FactOutcome, ProbeContext, ProbeFailure, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_OS_UPDATES
MAX_NAMES = 50
_SUCCESS_STAMP = "/var/lib/apt/periodic/update-success-stamp"
_LISTS = "/var/lib/apt/lists"
_HISTORY = ("/var/log/apt/history.log", "/var/log/dpkg.log")
_REBOOT_FLAG = "/var/run/reboot-required"
# What a simulated upgrade reads: installed packages, package lists, sources, pins, config.
# While none of these changes, its answer cannot change (see agent.host.command_cache).
_APT_INPUTS = (
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


def _apt(ctx: ProbeContext) -> FactOutcome:
    host, timeout = ctx.host, ctx.config.command_timeout
    argv = ["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"]
    plan = parse_apt_simulate(host.run_cached(argv, timeout, _APT_INPUTS).stdout_text())
    security = sorted({u.name for u in plan.security})
    fact = pb.OsUpdatesFact(
        source="apt",
        pending_total=plan.pending_total,
        pending_security=len(security),
        pending_security_names=security[:MAX_NAMES],
    )
    errors: list[pb.ProbeError] = []
    try:
        checked = _last_checked(ctx)
        if checked is not None:
            fact.last_checked.CopyFrom(_timestamp(checked))
        installed = _last_installed(ctx)
        if installed is not None:
            fact.last_installed.CopyFrom(_timestamp(installed))
    except HostError as exc:
        errors.append(source_error(FACT, "apt-state", exc))
    try:
        config = parse_apt_config(host.run(["apt-config", "dump"], timeout).stdout_text())
        wanted = periodic_enabled(config.get("APT::Periodic::Unattended-Upgrade"))
        fact.automatic_updates = wanted and host.which("unattended-upgrade") is not None
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "apt-config", exc))
    if host.exists(_REBOOT_FLAG):
        fact.reboot_required = True
    elif any(host.exists(path) for path in _REBOOT_FLAG_WRITERS):
        fact.reboot_required = False
    return FactOutcome(fact, errors)


def _dnf(ctx: ProbeContext) -> FactOutcome:
    host, timeout = ctx.host, ctx.config.command_timeout
    advisories = parse_updateinfo_security(
        host.run(["dnf", "-q", "-C", "updateinfo", "list", "--security"], timeout).stdout_text()
    )
    pending = parse_check_update(
        host.run(["dnf", "-q", "-C", "check-update"], timeout, ok_codes={0, 100}).stdout_text()
    )
    security = sorted({a.package for a in advisories})
    fact = pb.OsUpdatesFact(
        source="dnf",
        pending_total=len(set(pending)),
        pending_security=len(security),
        pending_security_names=security[:MAX_NAMES],
    )
    return FactOutcome(fact)


def probe(ctx: ProbeContext) -> FactOutcome:
    if ctx.host.which("apt-get"):
        try:
            return _apt(ctx)
        except (HostError, ParseError) as exc:
            return FactOutcome(None, [source_error(FACT, "apt", exc)])
    if ctx.host.which("dnf"):
        try:
            return _dnf(ctx)
        except (HostError, ParseError) as exc:
            return FactOutcome(None, [source_error(FACT, "dnf", exc)])
    raise ProbeFailure(
        pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND,
        "no supported package manager is installed (apt-get, dnf)",
    )
