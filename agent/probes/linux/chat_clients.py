"""WeChat and WeCom on Linux: from the system's package database (dpkg's or rpm's) and flatpak.

Commands (the whole list):
  * DPKG_QUERY and RPM_QUERY: the package databases, and which of them is this system's own
    (agent/probes/linux/chat_packages.py says which runs where, and why);
  * FLATPAK_LIST: `flatpak list`, only where flatpak is installed.

The flatpak is com.tencent.WeChat (Flathub); flatpak lists the system installations and
root's own. Another user's own installation (~/.local/share/flatpak/app/com.tencent.WeChat)
is seen as a folder only: listed with its version unknown, never left out.

Not read: pacman's database (an Arch system has neither dpkg's nor rpm's as its own, which the
"dpkg/rpm" source reports, so the clause reads UNKNOWN there), AppImages (a file anywhere,
with no record of its version), and WeChat unpacked by hand into /opt.
"""

from __future__ import annotations

from devposture.agent.parsers.app_versions import package_version
from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.flatpak import flatpak_versions
from devposture.agent.probes.chat_clients import found, scan, unreadable
from devposture.agent.probes.commands import FLATPAK_LIST
from devposture.agent.probes.linux.chat_packages import PackageDatabases
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.v1 import devposture_pb2 as pb

FLATPAK_APPS: dict[str, pb.ChatApp.ValueType] = {"com.tencent.WeChat": pb.CHAT_APP_WECHAT}
_USER_FLATPAK = ".local/share/flatpak/app"


def _flatpak(ctx: ProbeContext) -> list[pb.ChatClient]:
    if ctx.host.which("flatpak") is None:
        return []  # no flatpak, no flatpak apps
    listing = ctx.host.run(FLATPAK_LIST, ctx.config.command_timeout).stdout_text()
    clients: list[pb.ChatClient] = []
    for app_id, app in FLATPAK_APPS.items():
        for version in flatpak_versions(listing, app_id):
            source = f"flatpak {app_id}"
            try:
                clients.append(found(app, package_version(version), source))
            except ParseError:
                clients.append(unreadable(app, source, "", "flatpak lists no version number"))
        for home in ctx.host.home_dirs():
            folder = f"{home}/{_USER_FLATPAK}/{app_id}"
            if ctx.host.exists(folder):
                why = "installed for one user only: the agent reads system-wide flatpak apps"
                clients.append(unreadable(app, f"flatpak {app_id}", f"~/{_USER_FLATPAK}", why))
    return clients


def probe(ctx: ProbeContext) -> FactOutcome:
    return scan(ctx, (*PackageDatabases().sources(), ("flatpak", _flatpak)))
