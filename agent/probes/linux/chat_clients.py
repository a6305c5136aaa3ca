"""WeChat and WeCom on Linux, from dpkg's database and from flatpak.

Commands (the whole list):
  * DPKG_QUERY: `dpkg-query -W -f=<package, status, version> <PACKAGES...>`, exit 0 when every
    name is known and 1 when some are not (agent.parsers.dpkg_query says how it is read).
  * FLATPAK_LIST: `flatpak list`, only where flatpak is installed.

The packages (PACKAGES), each named by a public source (docs/chat-clients.md):
  * wechat: WeChat for Linux, Tencent's own deb (4.x; installs /opt/wechat);
  * wechat-beta: the same, as Kylin's archive ships it (wechat-beta_4.0.0.21) and the 2024
    beta was named (wechat-beta_1.0.0.238);
  * com.tencent.wechat: the UOS/deepin store's native WeChat (1.0.0.x);
  * com.qq.weixin.deepin: Windows WeChat under deepin-wine (its version is the Windows one);
  * com.qq.weixin.work.deepin and deepin.com.weixin.work: Windows WeCom under deepin-wine.
The flatpak is com.tencent.WeChat (Flathub); flatpak lists the system installations and
root's own. Another user's own installation (~/.local/share/flatpak/app/com.tencent.WeChat)
is seen as a folder only: listed with its version unknown, never left out.

Not read: rpm databases and pacman (an rpm-only system reads UNKNOWN: dpkg-query is missing,
which is reported), AppImages (a file anywhere, with no record of its version), and WeChat
unpacked by hand into /opt.
"""

from __future__ import annotations

from devposture.agent.host import CommandNotFoundError
from devposture.agent.parsers.app_versions import package_version
from devposture.agent.parsers.dpkg_query import parse_dpkg_query
from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.flatpak import flatpak_versions
from devposture.agent.probes.chat_clients import found, scan, unreadable
from devposture.agent.probes.commands import (
    DPKG_QUERY,
    FLATPAK_LIST,
    WECHAT_PACKAGES,
    WECOM_PACKAGES,
)
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.v1 import devposture_pb2 as pb

PACKAGES: dict[str, pb.ChatApp.ValueType] = {
    **dict.fromkeys(WECHAT_PACKAGES, pb.CHAT_APP_WECHAT),
    **dict.fromkeys(WECOM_PACKAGES, pb.CHAT_APP_WECOM),
}
_DPKG_SOME_UNKNOWN = 1  # dpkg-query's status when a named package has no record

FLATPAK_APPS: dict[str, pb.ChatApp.ValueType] = {"com.tencent.WeChat": pb.CHAT_APP_WECHAT}
_USER_FLATPAK = ".local/share/flatpak/app"


def _dpkg(ctx: ProbeContext) -> list[pb.ChatClient]:
    if ctx.host.which("dpkg-query") is None:
        raise CommandNotFoundError(
            "dpkg-query is not installed: only dpkg's package database is read on Linux"
        )
    result = ctx.host.run(DPKG_QUERY, ctx.config.command_timeout, {0, _DPKG_SOME_UNKNOWN})
    clients: list[pb.ChatClient] = []
    for package in parse_dpkg_query(result.stdout_text()):
        app = PACKAGES.get(package.name)
        if app is None:
            raise ParseError("dpkg-query: listed a package that was not asked for")
        if not package.on_disk:
            continue
        source = f"dpkg {package.name}"
        try:
            clients.append(found(app, package_version(package.version), source))
        except ParseError as exc:
            clients.append(unreadable(app, source, "", f"package version not understood: {exc}"))
    return clients


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
    return scan(ctx, (("dpkg", _dpkg), ("flatpak", _flatpak)))
