"""Where WeChat and WeCom keep their live chats, and where their own backups go, on each OS.

Data, not code: the scan (agent.probes.chat_backups) walks these layouts. Every entry comes
from a public source named in docs/chat-backups.md, where each layout is explained for IT and
auditors. Paths are relative to a user's home and use "/" on every OS; a segment with "*" or
"?" matches folder names (fnmatch).

Two kinds of places, never mixed up (clause 6.2.1):
  * a **live store** is where the app itself keeps its chats: encrypted by the app and written
    every minute, so its files, times and encryption say nothing about a backup. Its account
    folders are reported as live data, never as backups;
  * a **backup set** is what the app's own PC backup feature writes: a folder recognised by its
    file names (`backup_markers`), each set reported with its own newest time.
Archives that people make themselves are found in the folders the policy names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agent.parsers.wechat_config import wechat3_file_save_path, xwechat_root_path
from devposture.v1 import devposture_pb2 as pb

WECHAT = pb.CHAT_APP_WECHAT
WECOM = pb.CHAT_APP_WECOM


@dataclass(frozen=True)
class RootPointer:
    """A file in the user's profile that names a moved data root: `read` turns the file's bytes
    into the absolute folder the app writes into, or None when it keeps the default."""

    file: str
    read: Callable[[bytes], str | None]
    # The folder the app makes inside the named one ("WeChat Files"), "" for none.
    subfolder: str


@dataclass(frozen=True)
class AppLayout:
    app: pb.ChatApp.ValueType
    # "WeChat 3.x", "WeChat 4.x", "WeCom": shown with each live data folder.
    layout: str
    # Default data roots, relative to a home.
    roots: tuple[str, ...]
    # Account folders, relative to a data root ("wxid_*", or "*/*" for version/account).
    accounts: str
    # Files or folders, relative to an account folder, any of which proves it is live data.
    live_markers: tuple[str, ...]
    # Where the app's backup feature writes, relative to a data root: the containers whose
    # sub-folders are searched for backup sets.
    backup_containers: tuple[str, ...] = ()
    # A folder holding a file whose name matches this is one backup set.
    backup_markers: re.Pattern[str] | None = None
    # Which folder level below a container names the account (0: its direct child), if any.
    backup_account_level: int | None = None
    # Files that name a moved data root.
    pointers: tuple[RootPointer, ...] = ()
    # How the set's format is shown, e.g. "WeChat 3.x PC backup".
    backup_format: str = ""


# WeChat 3.x's "备份与恢复" (Backup and Restore) writes, per account, a folder of numbered
# BAK_n_TEXT / BAK_n_MEDIA files beside a Backup.db index (humiaozuzu/wechat-explorer#10).
_WECHAT3_BACKUP = re.compile(r"^(Backup\.db|BAK_\d+_(TEXT|MEDIA))$")

# --- Windows ---------------------------------------------------------------------------

_WINDOWS_WECHAT3 = AppLayout(
    app=WECHAT,
    layout="WeChat 3.x",
    roots=("Documents/WeChat Files",),
    accounts="*",
    live_markers=("Msg/MicroMsg.db", "Msg/Multi"),
    backup_containers=("*/BackupFiles", "Backup"),
    backup_markers=_WECHAT3_BACKUP,
    backup_account_level=0,
    pointers=(
        RootPointer(
            "AppData/Roaming/Tencent/WeChat/All Users/config/3ebffe94.ini",
            wechat3_file_save_path,
            "WeChat Files",
        ),
    ),
    backup_format="WeChat 3.x PC backup",
)
_WINDOWS_WECHAT4 = AppLayout(
    app=WECHAT,
    layout="WeChat 4.x",
    roots=("Documents/xwechat_files",),
    accounts="*",
    live_markers=("db_storage",),
    pointers=(
        RootPointer(
            "AppData/Roaming/Tencent/xwechat/config/*.ini", xwechat_root_path, "xwechat_files"
        ),
    ),
)
_WINDOWS_WECOM = AppLayout(
    app=WECOM,
    layout="WeCom",
    roots=("Documents/WXWork",),
    accounts="*",
    live_markers=("Data",),
)

WINDOWS: tuple[AppLayout, ...] = (_WINDOWS_WECHAT3, _WINDOWS_WECHAT4, _WINDOWS_WECOM)

# --- macOS -----------------------------------------------------------------------------

_MAC_CONTAINER = "Library/Containers/com.tencent.xinWeChat/Data"
MACOS: tuple[AppLayout, ...] = (
    AppLayout(
        app=WECHAT,
        layout="WeChat 3.x",
        roots=(f"{_MAC_CONTAINER}/Library/Application Support/com.tencent.xinWeChat",),
        accounts="*/*",
        live_markers=("Message",),
        backup_containers=("*/Backup",),
        backup_markers=_WECHAT3_BACKUP,
        backup_account_level=0,
        backup_format="WeChat 3.x PC backup",
    ),
    AppLayout(
        app=WECHAT,
        layout="WeChat 4.x",
        roots=(f"{_MAC_CONTAINER}/Documents/xwechat_files",),
        accounts="*",
        live_markers=("db_storage",),
    ),
    AppLayout(
        app=WECOM,
        layout="WeCom",
        roots=("Library/Containers/com.tencent.WeWorkMac/Data/Library/Application Support/WXWork",),
        accounts="*",
        live_markers=("Data",),
    ),
)

# --- Linux -----------------------------------------------------------------------------
# Tencent's native WeChat for Linux (4.x) keeps its data in ~/Documents/xwechat_files; the
# Windows clients under Wine keep the Windows layout inside the prefix's user folder.

_WINE_PREFIXES = (
    ".wine/drive_c/users/*",
    ".deepinwine/Deepin-WeChat/drive_c/users/*",
    ".deepinwine/Deepin-WXWork/drive_c/users/*",
)


def _under_wine(layout: AppLayout) -> AppLayout:
    """The Windows layout inside every Wine prefix, with the Windows roots."""
    roots = tuple(f"{prefix}/{root}" for prefix in _WINE_PREFIXES for root in layout.roots)
    return AppLayout(
        app=layout.app,
        layout=f"{layout.layout} (Wine)",
        roots=roots,
        accounts=layout.accounts,
        live_markers=layout.live_markers,
        backup_containers=layout.backup_containers,
        backup_markers=layout.backup_markers,
        backup_account_level=layout.backup_account_level,
        backup_format=layout.backup_format,
    )


LINUX: tuple[AppLayout, ...] = (
    AppLayout(
        app=WECHAT,
        layout="WeChat 4.x",
        roots=("Documents/xwechat_files",),
        accounts="*",
        live_markers=("db_storage",),
    ),
    _under_wine(_WINDOWS_WECHAT3),
    _under_wine(_WINDOWS_WECHAT4),
    _under_wine(_WINDOWS_WECOM),
)

BY_FAMILY: dict[pb.OsFamily.ValueType, tuple[AppLayout, ...]] = {
    pb.OS_FAMILY_LINUX: LINUX,
    pb.OS_FAMILY_WINDOWS: WINDOWS,
    pb.OS_FAMILY_MACOS: MACOS,
}
