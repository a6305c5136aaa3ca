"""Where WeChat and WeCom keep their live chats, and where their own backups go, on each OS.

Data, not code: the scan (agent.probes.chat_backups) walks these layouts. Every entry comes
from a public source; docs/chat-backups.md explains each for IT and auditors, with the
sources (section numbers below). Paths are relative to a user's home and use "/" on every OS; a
segment with "*" or "?" matches names (fnmatch).

Two kinds of places, never mixed up (clause 6.2.1):
  * a **live store** is where the app itself keeps its chats: encrypted by the app and written
    every minute, so its files, times and encryption say nothing about a backup. Its account
    folders are reported as live data, never walked, timed or sampled;
  * a **backup set** is what the app's own PC backup feature writes, found below the layout's
    backup containers and reported with its own newest time.
Archives that people make themselves are found in the folders the policy names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.v1 import devposture_pb2 as pb

WECHAT = pb.CHAT_APP_WECHAT
WECOM = pb.CHAT_APP_WECOM


@dataclass(frozen=True)
class RootPointer:
    """A config file in the user's profile that names a moved data root (agent.parsers.
    wechat_config): the app's data folder is `subfolder` inside the folder it names."""

    file: str
    subfolder: str


@dataclass(frozen=True)
class BackupLayout:
    """Where an app's own backup feature writes, and how a set is recognised."""

    # Folders below a data root whose sub-folders hold backup sets.
    containers: tuple[str, ...]
    # A folder holding a file whose name matches is one set.
    markers: re.Pattern[str]
    # How many levels below a container the sets lie (the search goes at least
    # chat_backups.MAX_SET_DEPTH deep).
    depth: int
    # Which segment of the set's path, relative to the data root, names the account.
    account_segment: int
    # Shown as the set's format.
    format: str
    # Sampled first for encryption (the set's index), before the newest marker files.
    index_file: str = ""
    # The files sampled for encryption, by their path in the set (newest first). None: the
    # marker files.
    samples: re.Pattern[str] | None = None
    # Files the app writes when a set is used, not made: they do not date the set.
    undated: frozenset[str] = frozenset()
    # Said of a folder just below a container that holds files but no set: what it holds is
    # then unknown (counted as skipped). Empty: such folders are passed over.
    unrecognised: str = ""


@dataclass(frozen=True)
class AppLayout:
    app: pb.ChatApp.ValueType
    # "WeChat 3.x", "WeChat 4.x", "WeCom": shown with each live data folder.
    layout: str
    # Default data roots, relative to a home.
    roots: tuple[str, ...]
    # Account folders, relative to a data root ("*", or "*/*" for a version level first).
    accounts: str
    # Files or folders, relative to an account folder, any of which proves it holds the
    # app's live store. Empty: every folder matching `accounts` does.
    live_markers: tuple[str, ...]
    backups: BackupLayout | None = None
    pointers: tuple[RootPointer, ...] = ()


# WeChat 3.x's "备份与恢复" ("备份聊天记录至电脑") writes one folder per set, holding numbered
# BAK_n_TEXT / BAK_n_MEDIA files beside a Backup.db index (docs/chat-backups.md 2.1 and 3.1:
# humiaozuzu/wechat-explorer#10, shadow000902/blog_source, jamesting-eng/c-drive-cleanup-master).
_WECHAT3_MARKERS = re.compile(r"^(Backup\.db|BAK_\d+_(TEXT|MEDIA))$")
WECHAT3_FORMAT = "WeChat 3.x PC backup"

# WeChat 4.x's "备份与迁移 > 备份与恢复 > 新建备份" writes, below xwechat_files/Backup/<account>
# (the wxid without the live folder's _<4 hex>), one folder per phone and in it
# files/<n>/, one per backup: pkg.attr, pkg_info.dat and the other set files, and per chat
# <id>/ChatPackage/<from ms>-<to ms> (the messages), Index/ and Media/ (docs 2.2: 52pojie
# thread 2068774, confirmed by real paths in public code). The same format on every desktop.
# The messages are "RMFH" files, AES-GCM encrypted on the phone: those are sampled.
# Restoring a set opens files/<n>/pkg.lock, which so does not date it.
_WECHAT4_BACKUP = BackupLayout(
    containers=("Backup",),
    markers=re.compile(r"^(pkg\.attr|pkg_info\.dat)$"),
    depth=4,
    account_segment=1,
    format="WeChat 4.x PC backup",
    samples=re.compile(r"^[^/]+/ChatPackage/[^/]+$"),
    undated=frozenset({"pkg.lock"}),
    unrecognised="holds files but no WeChat 4.x backup set (files/<n> with pkg_info.dat or"
    " pkg.attr), so what it holds is unknown",
)
_WECHAT4_LIVE = (
    "db_storage/message",
    "db_storage/session/session.db",
    "db_storage/contact/contact.db",
)
_WECHAT4_POINTER = "51a1fffea11325a1e4104c6b3de47af7.ini"  # MD5("KEY_LAST_XWEACHAT_FILE_DIR")

# --- Windows (docs 2) -------------------------------------------------------------------

_WINDOWS_WECHAT3 = AppLayout(
    app=WECHAT,
    layout="WeChat 3.x",
    roots=("Documents/WeChat Files",),
    accounts="*",
    live_markers=("Msg/MicroMsg.db", "Msg/Multi", "Msg/Misc.db"),
    backups=BackupLayout(
        containers=("*/BackupFiles",),
        markers=_WECHAT3_MARKERS,
        depth=1,
        account_segment=0,
        format=WECHAT3_FORMAT,
        index_file="Backup.db",
    ),
    pointers=(
        RootPointer("AppData/Roaming/Tencent/WeChat/All Users/config/3ebffe94.ini", "WeChat Files"),
    ),
)
_WINDOWS_WECHAT4 = AppLayout(
    app=WECHAT,
    layout="WeChat 4.x",
    roots=("Documents/xwechat_files",),
    accounts="*",
    live_markers=_WECHAT4_LIVE,
    backups=_WECHAT4_BACKUP,
    pointers=(
        RootPointer(f"AppData/Roaming/Tencent/xwechat/config/{_WECHAT4_POINTER}", "xwechat_files"),
    ),
)
# WeCom keeps one folder per account, its databases in Data/ (docs 2.3: blackboxo/
# CleanMyWechat#7; Chunyu33/viap for the Chinese folder name). Its Backup/ folder's format is
# not published: it is not counted.
_WINDOWS_WECOM = AppLayout(
    app=WECOM,
    layout="WeCom",
    roots=("Documents/WXWork", "Documents/企业微信文件"),
    accounts="*",
    live_markers=("Data",),
)

WINDOWS: tuple[AppLayout, ...] = (_WINDOWS_WECHAT3, _WINDOWS_WECHAT4, _WINDOWS_WECOM)

# --- macOS (docs 3): everything inside the apps' sandbox containers ---------------------

_MAC_WECHAT = "Library/Containers/com.tencent.xinWeChat/Data"
MACOS: tuple[AppLayout, ...] = (
    # 3.x: .../com.tencent.xinWeChat/2.0b4.0.9/<32 hex account>/Message/msg_0.db; backups in
    # .../2.0b4.0.9/Backup/<32 hex account>/<set>/.
    AppLayout(
        app=WECHAT,
        layout="WeChat 3.x",
        roots=(f"{_MAC_WECHAT}/Library/Application Support/com.tencent.xinWeChat",),
        accounts="*/*",
        live_markers=("Message", "Session/session_new.db", "Contact/wccontact_new2.db"),
        backups=BackupLayout(
            containers=("*/Backup",),
            markers=_WECHAT3_MARKERS,
            depth=2,
            account_segment=2,
            format=WECHAT3_FORMAT,
            index_file="Backup.db",
        ),
    ),
    # 4.x: Data/Documents/xwechat_files; sjzar/chatlog names the container com.tencent.xWeChat,
    # every real path seen says com.tencent.xinWeChat: both are looked at. Backups in
    # xwechat_files/Backup/<account> as on Windows (public scripts' paths; the same format on
    # every desktop, docs 3.2).
    AppLayout(
        app=WECHAT,
        layout="WeChat 4.x",
        roots=(
            f"{_MAC_WECHAT}/Documents/xwechat_files",
            "Library/Containers/com.tencent.xWeChat/Data/Documents/xwechat_files",
        ),
        accounts="*",
        live_markers=_WECHAT4_LIVE,
        backups=_WECHAT4_BACKUP,
    ),
    # WeCom: one folder per account under Profiles (MisonL/wecom-cleaner).
    AppLayout(
        app=WECOM,
        layout="WeCom",
        roots=("Library/Containers/com.tencent.WeWorkMac/Data/Documents/Profiles",),
        accounts="*",
        live_markers=(),
    ),
)

# --- Linux (docs 4) ---------------------------------------------------------------------
# Tencent's WeChat 4.x for Linux: ~/Documents/xwechat_files or ~/xwechat_files (sources
# disagree: both are looked at), the Flatpak's under ~/.var/app/com.tencent.WeChat, a moved
# root in ~/.xwechat/config. The Windows clients under Wine keep the Windows layouts inside the
# prefix's user folder; deepin-wine's WeChat defaults to ~/WeChat Files (vufa/deepin-wine-
# wechat-arch#71).

_FLATPAK = ".var/app/com.tencent.WeChat"
_WINE_PREFIXES = (
    ".wine/drive_c/users/*",
    ".deepinwine/Deepin-WeChat/drive_c/users/*",
    ".deepinwine/Deepin-WXWork/drive_c/users/*",
)


def _under_wine(layout: AppLayout, *extra_roots: str) -> AppLayout:
    """The Windows layout inside every Wine prefix. A moved root is not followed there: its
    value is a Windows path, and which Linux folder a Wine drive letter is depends on the
    prefix's configuration."""
    roots = tuple(f"{prefix}/{root}" for prefix in _WINE_PREFIXES for root in layout.roots)
    return AppLayout(
        app=layout.app,
        layout=f"{layout.layout} (Wine)",
        roots=roots + extra_roots,
        accounts=layout.accounts,
        live_markers=layout.live_markers,
        backups=layout.backups,
    )


LINUX: tuple[AppLayout, ...] = (
    AppLayout(
        app=WECHAT,
        layout="WeChat 4.x",
        roots=("Documents/xwechat_files", "xwechat_files", f"{_FLATPAK}/xwechat_files"),
        accounts="*",
        live_markers=_WECHAT4_LIVE,
        backups=_WECHAT4_BACKUP,
        pointers=(
            RootPointer(f".xwechat/config/{_WECHAT4_POINTER}", "xwechat_files"),
            RootPointer(f"{_FLATPAK}/.xwechat/config/{_WECHAT4_POINTER}", "xwechat_files"),
        ),
    ),
    _under_wine(_WINDOWS_WECHAT3, "WeChat Files"),
    _under_wine(_WINDOWS_WECHAT4),
    _under_wine(_WINDOWS_WECOM),
)

BY_FAMILY: dict[pb.OsFamily.ValueType, tuple[AppLayout, ...]] = {
    pb.OS_FAMILY_LINUX: LINUX,
    pb.OS_FAMILY_WINDOWS: WINDOWS,
    pb.OS_FAMILY_MACOS: MACOS,
}
