"""WeChat and WeCom on Windows: where each is installed, and the version of the binaries there.

The agent runs as LocalSystem, so HKCU is not the employee's (WeChat 3.x's own
HKCU\\Software\\Tencent\\WeChat "Version" DWORD, 0x63090c11 = 3.9.12.17 once the 0x6 in the top
nibble is masked, is that user's alone and is not read). Machine-wide records are read instead:

  * Uninstall keys (UNINSTALL_QUERIES, the only commands this probe runs): `reg query` of
    HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\<name> and of
    the same key in the 64-bit view, for each product code the installers use (winget's
    manifests: "WeChat" for WeChat 3.x, "Weixin" for WeChat 4.x, "企业微信" for WeCom; all are
    machine-wide NSIS installers). A missing key prints reg's "unable to find" message and
    exits 1: not installed. The key gives the install folder (chosen by the user, often on
    D:) and the DisplayVersion the installer wrote (agent.parsers.windows.uninstall_key).
  * Install folders: each install keeps its binaries in a folder named after its version,
    next to a launcher: "...\\Tencent\\WeChat\\[3.9.8.25]\\WeChatWin.dll" (3.x),
    "...\\Tencent\\Weixin\\4.0.0.26\\" (4.x), "...\\WXWork\\5.0.9.6029\\" beside WXWork.exe
    (WeCom). The folders of the Uninstall keys and the default ones (DEFAULT_ROOTS, under
    C:\\Program Files and C:\\Program Files (x86)) are listed; the newest version folder is
    the version (source "install folder"). Where an update left the previous folder behind,
    the newest is taken: leftovers are assumed older, which no recording here confirms.

A folder named by a key but holding no version folder is reported with the key's
DisplayVersion (source "registry"), or with its version unknown when the key has none. A
default folder holding neither a version folder nor a launcher (WeChat.exe, Weixin.exe,
WXWork.exe) is what an uninstall left behind, not an install; one holding a launcher but no
version folder is listed with its version unknown. Per-user hives (HKU\\<SID>) are not read:
these installers are machine-wide (winget: Scope machine). Paths are as the console code
page prints them: an install folder with Chinese in its name on a non-Chinese Windows reads
garbled, and then only the key's DisplayVersion is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.host import HostError, HostPermissionError, display_path
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.app_versions import dotted_version, folder_version, newest
from devposture.agent.parsers.windows.reg_query import key_missing, parse_reg_query
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.parsers.windows.uninstall_key import uninstall_entry
from devposture.agent.probes.chat_clients import found, scan, unreadable
from devposture.agent.probes.commands import (
    UNINSTALL_VIEWS,
    WECHAT_PRODUCT_CODES,
    WECOM_PRODUCT_CODES,
    uninstall_query,
)
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, describe
from devposture.agent.probes.windows.commands import console_encoding, denial_reason
from devposture.v1 import devposture_pb2 as pb

PRODUCT_CODES: tuple[tuple[str, pb.ChatApp.ValueType], ...] = (
    *((code, pb.CHAT_APP_WECHAT) for code in WECHAT_PRODUCT_CODES),
    *((code, pb.CHAT_APP_WECOM) for code in WECOM_PRODUCT_CODES),
)
UNINSTALL_QUERIES: tuple[tuple[pb.ChatApp.ValueType, tuple[str, ...]], ...] = tuple(
    (app, uninstall_query(view, code))
    for code, app in PRODUCT_CODES
    for view in UNINSTALL_VIEWS
)
_REG_MISSING_EXIT = 1

DEFAULT_ROOTS: tuple[tuple[str, pb.ChatApp.ValueType], ...] = tuple(
    (f"{program_files}/{folder}", app)
    for program_files in ("C:/Program Files", "C:/Program Files (x86)")
    for folder, app in (
        ("Tencent/WeChat", pb.CHAT_APP_WECHAT),
        ("Tencent/Weixin", pb.CHAT_APP_WECHAT),
        ("WXWork", pb.CHAT_APP_WECOM),
    )
)
# The launchers beside the version folders (WeChat 3.x, Weixin 4.x, WeCom), lower-cased.
LAUNCHERS = frozenset({"wechat.exe", "weixin.exe", "wxwork.exe"})
FOLDERS_SOURCE = "install folder"
REGISTRY_SOURCE = "registry"


@dataclass
class _Root:
    app: pb.ChatApp.ValueType
    path: str
    display_version: str = ""
    from_registry: bool = False


def _query(ctx: ProbeContext, argv: tuple[str, ...]) -> str | None:
    """The key's listing, or None when the key does not exist."""
    result = ctx.host.run(argv, ctx.config.command_timeout, {0, _REG_MISSING_EXIT})
    encoding = console_encoding(ctx)
    printed = decode_output(result.stdout, encoding) + "\n" + decode_output(result.stderr, encoding)
    if result.returncode == _REG_MISSING_EXIT:
        if key_missing(printed):
            return None
        refused = denial_reason(printed)
        if refused:
            raise HostPermissionError(f"reg was refused by Windows: {refused}")
        raise ParseError("reg query: exit 1 without the key-not-found message")
    return decode_output(result.stdout, encoding)


class _Install:
    """The roots to look in: the Uninstall keys' first, then the default ones."""

    def __init__(self) -> None:
        self.roots: dict[str, _Root] = {}

    def add(self, root: _Root) -> None:
        known = self.roots.get(root.path.casefold())
        if known is None:
            self.roots[root.path.casefold()] = root
        elif root.from_registry and not known.display_version:
            known.display_version = root.display_version

    def registry(self, ctx: ProbeContext) -> list[pb.ChatClient]:
        clients: list[pb.ChatClient] = []
        for app, argv in UNINSTALL_QUERIES:
            listing = _query(ctx, argv)
            if listing is None:
                continue
            entry = uninstall_entry(parse_reg_query(listing))
            if entry.folder:
                self.add(_Root(app, entry.folder, entry.display_version, from_registry=True))
                continue
            try:  # a key that names no folder: its version is all there is
                clients.append(found(app, dotted_version(entry.display_version), REGISTRY_SOURCE))
            except ParseError:
                why = "the Uninstall key names no folder and no version"
                clients.append(unreadable(app, REGISTRY_SOURCE, "", why))
        return clients

    def folders(self, ctx: ProbeContext) -> list[pb.ChatClient]:
        for path, app in DEFAULT_ROOTS:
            self.add(_Root(app, path))
        homes = ctx.host.home_dirs()
        clients: list[pb.ChatClient] = []
        for root in self.roots.values():
            if not root.from_registry and not ctx.host.exists(root.path):
                continue
            location = display_path(root.path, homes)
            try:
                names, listing_error = ctx.host.list_dir(root.path), ""
            except HostError as exc:
                names, listing_error = [], describe(exc)
            version = newest(v for v in map(folder_version, names) if v is not None)
            if version is not None:
                clients.append(found(root.app, version, FOLDERS_SOURCE, location))
            elif root.from_registry:
                clients.append(_registry_version(root, location, listing_error))
            elif LAUNCHERS & {name.casefold() for name in names}:
                why = f"{location} holds the launcher but no version folder"
                clients.append(unreadable(root.app, FOLDERS_SOURCE, location, why))
            # else: a default folder without the program, left behind by an uninstall
        return clients


def _registry_version(root: _Root, location: str, listing_error: str) -> pb.ChatClient:
    """A client its Uninstall key names, whose folder shows no version: the key's version."""
    try:
        return found(root.app, dotted_version(root.display_version), REGISTRY_SOURCE, location)
    except ParseError:
        why = listing_error or f"no version folder in {location}"
        if root.display_version:
            why += "; the Uninstall key's DisplayVersion is not a version number"
        return unreadable(root.app, FOLDERS_SOURCE, location, why)


def probe(ctx: ProbeContext) -> FactOutcome:
    install = _Install()
    return scan(ctx, (("Uninstall keys", install.registry), (FOLDERS_SOURCE, install.folders)))
