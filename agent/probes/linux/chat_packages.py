"""WeChat and WeCom installed as packages on Linux: from dpkg's database or rpm's, whichever is
this system's own.

Commands (agent/probes/commands.py):
  * DPKG_QUERY: `dpkg-query -W -f=<package, status, version> dpkg rpm <DEB_PACKAGES...>`, where
    dpkg-query is installed (agent.parsers.dpkg_query says how it is read);
  * RPM_QUERY: `rpm -q --queryformat <name, epoch, version, release, arch> rpm <RPM_PACKAGES...>`,
    where rpm is installed and dpkg does not own it (agent.parsers.rpm_query).

Which database is this system's: the one that lists its own package manager. Debian, Ubuntu,
Deepin, UOS and Kylin desktops list dpkg in dpkg's database; Fedora, RHEL and its rebuilds,
openEuler, Anolis, OpenCloudOS, and the server editions of Kylin and UOS list rpm in rpm's. Each
tool may be there on the other kind of system, with a database that is not the system's: Fedora
packages dpkg, and Debian packages rpm, whose database is a side one in the home of whoever runs
it (`~/.rpmdb`). Where dpkg's database lists rpm, rpm is not run at all: `rpm -q` creates that
database when it finds none, and the agent writes nothing. While dpkg's database cannot be read,
whether rpm is Debian's cannot be told either, so rpm is not run then and dpkg's error stands.

A database that is not the system's still counts what it lists (a client installed there is
installed), but never stands for "none installed": when no database that lists its own manager
was read, the "dpkg/rpm" source says so and the collector reads the clause UNKNOWN.

The packages, each named by a public source (docs/chat-clients.md): the Debian ones below, and
`commands.WECHAT_RPMS`/`WECOM_RPMS` for rpm. Every installed instance counts: two versions
installed side by side are two clients. The version is the dotted number a package version
starts with (agent.parsers.app_versions.package_version), compared with the policy's minimums
like every other source's; rpm's epoch and release play no part.
"""

from __future__ import annotations

from devposture.agent.host import CommandFailedError, CommandNotFoundError, SourceMissingError
from devposture.agent.parsers.app_versions import package_version
from devposture.agent.parsers.dpkg_query import parse_dpkg_query
from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.rpm_query import database_errors, parse_rpm_query
from devposture.agent.probes.chat_clients import Source, found, unreadable
from devposture.agent.probes.commands import (
    DPKG_QUERY,
    RPM_QUERY,
    WECHAT_PACKAGES,
    WECHAT_RPMS,
    WECOM_PACKAGES,
    WECOM_RPMS,
)
from devposture.agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb

DEB_PACKAGES: dict[str, pb.ChatApp.ValueType] = {
    **dict.fromkeys(WECHAT_PACKAGES, pb.CHAT_APP_WECHAT),
    **dict.fromkeys(WECOM_PACKAGES, pb.CHAT_APP_WECOM),
}
RPM_PACKAGES: dict[str, pb.ChatApp.ValueType] = {
    **dict.fromkeys(WECHAT_RPMS, pb.CHAT_APP_WECHAT),
    **dict.fromkeys(WECOM_RPMS, pb.CHAT_APP_WECOM),
}
SYSTEM_SOURCE = "dpkg/rpm"  # the source named when no database read is the system's
_DPKG, _RPM = "dpkg", "rpm"
_DPKG_SOME_UNKNOWN = 1  # dpkg-query's status when a named package has no record
_RPM_NAMES = RPM_QUERY[4:]  # the names asked, after `rpm -q --queryformat FORMAT`


def _client(app: pb.ChatApp.ValueType, manager: str, name: str, version: str) -> pb.ChatClient:
    source = f"{manager} {name}"
    try:
        return found(app, package_version(version), source)
    except ParseError as exc:
        return unreadable(app, source, "", f"package version not understood: {exc}")


class PackageDatabases:
    """dpkg's and rpm's databases, read once for one collection (a new one each time): the
    sources `sources()` gives run in order and tell each other what they found."""

    def __init__(self) -> None:
        self._tool_found = False
        self._failed = False  # a database could not be read: its own error says so
        self._systems_read = False  # a database that lists its own package manager was read
        self._rpm_is_debians: bool | None = None  # unknown until dpkg's database is read

    def sources(self) -> tuple[tuple[str, Source], ...]:
        return ((_DPKG, self.dpkg), (_RPM, self.rpm), (SYSTEM_SOURCE, self.system))

    def dpkg(self, ctx: ProbeContext) -> list[pb.ChatClient]:
        if ctx.host.which("dpkg-query") is None:
            self._rpm_is_debians = False
            return []
        self._tool_found = True
        self._failed = True  # until it is read
        result = ctx.host.run(DPKG_QUERY, ctx.config.command_timeout, {0, _DPKG_SOME_UNKNOWN})
        listed = parse_dpkg_query(result.stdout_text())
        if any(p.name not in DEB_PACKAGES and p.name not in (_DPKG, _RPM) for p in listed):
            raise ParseError("dpkg-query: listed a package that was not asked for")
        packages = [p for p in listed if p.on_disk]
        self._failed = False
        managers = {p.name for p in packages} & {_DPKG, _RPM}
        self._systems_read |= _DPKG in managers
        self._rpm_is_debians = _RPM in managers
        return [
            _client(DEB_PACKAGES[p.name], _DPKG, p.name, p.version)
            for p in packages
            if p.name in DEB_PACKAGES
        ]

    def rpm(self, ctx: ProbeContext) -> list[pb.ChatClient]:
        if ctx.host.which("rpm") is None:
            return []
        self._tool_found = True
        if self._rpm_is_debians is not False:
            return []  # Debian's rpm, or dpkg unread: see the module's docstring
        self._failed = True  # until it is read
        ok_codes = range(len(_RPM_NAMES) + 1)  # rpm's status counts the names not installed
        result = ctx.host.run(RPM_QUERY, ctx.config.command_timeout, ok_codes)
        errors = database_errors(result.stderr_text())
        if errors:
            raise CommandFailedError(
                "rpm could not read its package database",
                result.returncode,
                result.stdout,
                errors[0].encode(),
            )
        packages = parse_rpm_query(result.stdout_text(), result.returncode, _RPM_NAMES)
        self._failed = False
        self._systems_read |= any(p.name == _RPM for p in packages)
        return [
            _client(RPM_PACKAGES[p.name], _RPM, p.name, p.version)
            for p in packages
            if p.name in RPM_PACKAGES
        ]

    def system(self, ctx: ProbeContext) -> list[pb.ChatClient]:
        """Nothing, once this system's own database was read (or one failed, which says so);
        else why the answer cannot stand for the system."""
        if not self._tool_found:
            raise CommandNotFoundError(
                "neither dpkg-query nor rpm is installed: no package database can be read"
            )
        if self._systems_read or self._failed:
            return []
        raise SourceMissingError(
            "neither dpkg's nor rpm's database lists its own package manager: this system's"
            " package database was not read"
        )
