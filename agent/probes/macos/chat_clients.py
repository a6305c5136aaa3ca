"""WeChat and WeCom on macOS, from each app bundle's Info.plist.

The bundles (BUNDLES) are looked for in /Applications and in every user's ~/Applications:
WeChat.app (bundle id com.tencent.xinWeChat, 3.x and 4.x alike) and 企业微信.app (WeCom, bundle
id com.tencent.WeWorkMac; crash reports of WeCom 3.1.6 show it at /Applications/企业微信.app).
For each bundle that exists, one command (the whole list):

    defaults read <bundle>/Contents/Info.plist CFBundleShortVersionString

which prints the app's version (agent.parsers.macos.bundle_version). A bundle whose version
cannot be read (the key missing, defaults failing) is listed with the reason, never left out.
WeChat's short version has three parts ("4.1.5" for the 4.1.5.26 its About window shows): the
collector compares it as it is.
"""

from __future__ import annotations

from devposture.agent.host import CommandFailedError, HostError, display_path
from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.macos.bundle_version import key_missing, parse_short_version
from devposture.agent.probes.chat_clients import found, scan, unreadable
from devposture.agent.probes.commands import BUNDLE_VERSION_KEY, bundle_version
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, describe
from devposture.v1 import devposture_pb2 as pb

BUNDLES: tuple[tuple[str, pb.ChatApp.ValueType], ...] = (
    ("WeChat.app", pb.CHAT_APP_WECHAT),
    ("企业微信.app", pb.CHAT_APP_WECOM),
)
SOURCE = "Info.plist"


def _version(ctx: ProbeContext, app: pb.ChatApp.ValueType, bundle: str) -> pb.ChatClient:
    location = display_path(bundle, ctx.host.home_dirs())
    try:
        result = ctx.host.run(bundle_version(bundle), ctx.config.command_timeout)
        return found(app, parse_short_version(result.stdout_text()), SOURCE, location)
    except CommandFailedError as exc:
        stderr = exc.stderr.decode("utf-8", errors="replace")
        why = f"Info.plist has no {BUNDLE_VERSION_KEY}" if key_missing(stderr) else describe(exc)
        return unreadable(app, SOURCE, location, why)
    except HostError as exc:
        return unreadable(app, SOURCE, location, describe(exc))
    except ParseError as exc:
        return unreadable(app, SOURCE, location, f"{BUNDLE_VERSION_KEY} not understood: {exc}")


def _bundles(ctx: ProbeContext) -> list[pb.ChatClient]:
    folders = ["/Applications", *(f"{home}/Applications" for home in ctx.host.home_dirs())]
    clients: list[pb.ChatClient] = []
    for folder in folders:
        for name, app in BUNDLES:
            bundle = f"{folder}/{name}"
            if ctx.host.exists(bundle):
                clients.append(_version(ctx, app, bundle))
    return clients


def probe(ctx: ProbeContext) -> FactOutcome:
    return scan(ctx, ((SOURCE, _bundles),))
