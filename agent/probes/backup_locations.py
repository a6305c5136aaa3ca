"""Where WeChat and WeCom keep chat data on each OS, relative to a user's home folder.

A "*" segment matches any one folder name (the Windows user name inside a Wine prefix).
Sources, for the Linux list:
  * WeChat for Windows 3.x keeps "Documents\\WeChat Files\\<wxid>" (its Settings > Files page
    names this folder); WeChat 4.x moved to "Documents\\xwechat_files". WeCom keeps
    "Documents\\WXWork". Under Wine those sit in drive_c/users/<user>/Documents of the prefix:
    ~/.wine for plain Wine, ~/.deepinwine/Deepin-WeChat and Deepin-WXWork for the deepin-wine
    packages used on Deepin/UOS and Ubuntu.
  * Tencent's native WeChat for Linux (4.x, 2024) stores data in ~/Documents/xwechat_files and
    its settings in ~/.xwechat.
  * Some users point the files folder at ~/WeChat Files; it is checked too.
"""

from __future__ import annotations

from devposture.v1 import devposture_pb2 as pb

WECHAT = pb.CHAT_APP_WECHAT
WECOM = pb.CHAT_APP_WECOM

LINUX: tuple[tuple[pb.ChatApp.ValueType, str], ...] = (
    (WECHAT, "Documents/WeChat Files"),
    (WECHAT, "WeChat Files"),
    (WECHAT, "Documents/xwechat_files"),
    (WECHAT, ".xwechat"),
    (WECHAT, ".wine/drive_c/users/*/Documents/WeChat Files"),
    (WECHAT, ".wine/drive_c/users/*/Documents/xwechat_files"),
    (WECHAT, ".deepinwine/Deepin-WeChat/drive_c/users/*/Documents/WeChat Files"),
    (WECOM, "Documents/WXWork"),
    (WECOM, ".wine/drive_c/users/*/Documents/WXWork"),
    (WECOM, ".deepinwine/Deepin-WXWork/drive_c/users/*/Documents/WXWork"),
)

# macOS. WeChat for Mac is sandboxed: everything it keeps, including the chat databases and
# the "Backup and Restore" backups made from a phone, lies under its container's
# Application Support folder (the whole ~/Library/Containers/com.tencent.xinWeChat is what a
# migration copies, per liguobao's "macOS Lossless Migration of PC WeChat Chat Records", 2025,
# GitHub liguobao/liguobao.github.io). WeCom (WeWork) for Mac keeps its data under
# .../com.tencent.WeWorkMac/Data/Library/Application Support/WXWork (seen in public scripts
# that read it, found by code search). Each folder is scanned as a whole, so the Backup folder
# inside WeChat's is counted once, with it.
MACOS: tuple[tuple[pb.ChatApp.ValueType, str], ...] = (
    (
        WECHAT,
        "Library/Containers/com.tencent.xinWeChat/Data/Library/Application Support/"
        "com.tencent.xinWeChat",
    ),
    (WECOM, "Library/Containers/com.tencent.WeWorkMac/Data/Library/Application Support/WXWork"),
)

# Windows: the folders named in the sources above, under each user's home ("C:/Users/<name>").
# The backups WeChat's "Backup and Restore" makes on the PC are written inside these folders,
# so the walk of each folder counts them too.
WINDOWS: tuple[tuple[pb.ChatApp.ValueType, str], ...] = (
    (WECHAT, "Documents/WeChat Files"),
    (WECHAT, "Documents/xwechat_files"),
    (WECOM, "Documents/WXWork"),
)

# Default locations by OS family, for the probes' callers (the backup watcher).
BY_FAMILY: dict[pb.OsFamily.ValueType, tuple[tuple[pb.ChatApp.ValueType, str], ...]] = {
    pb.OS_FAMILY_LINUX: LINUX,
    pb.OS_FAMILY_WINDOWS: WINDOWS,
    pb.OS_FAMILY_MACOS: MACOS,
}
