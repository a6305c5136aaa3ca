"""WeChat and WeCom on a replayed Mac: `defaults read` answers as published
(tests/fixtures/macos/chat_clients/README.md).

The only recorded answers are WeChat's (WeChatTweak#895: "4.1.5"; #928: the missing-key
wording, recorded for CFBundleVersion of the same Info.plist and replayed here as the answer
for CFBundleShortVersionString, as this folder's README says). No recorded `defaults read` of
企业微信.app was found: its tests use no recorded output.
"""

from __future__ import annotations

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.macos.bundle_version import key_missing, parse_short_version
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.macos import PROBES
from devposture.agent.probes.macos import chat_clients as mac
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import MacReplayHost, fixture, out

WECHAT, WECOM = pb.CHAT_APP_WECHAT, pb.CHAT_APP_WECOM
WECHAT_APP = "/Applications/WeChat.app"
WECOM_APP = "/Applications/企业微信.app"
SHORT_VERSION = "chat_clients/defaults-wechat-shortversion-4.1.5-wechattweak-895.out"
KEY_MISSING = "chat_clients/defaults-wechat-key-missing-wechattweak-928.err"


def _run(host: MacReplayHost) -> FactOutcome:
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    return run_probe(pb.FACT_CHAT_CLIENTS, mac.probe, ctx)


def _clients(outcome: FactOutcome) -> list[tuple[int, str, str, str]]:
    assert isinstance(outcome.fact, pb.ChatClientsFact), outcome.errors
    return [(c.app, c.version, c.location, c.version_error) for c in outcome.fact.clients]


def test_parsers_on_the_recordings() -> None:
    assert parse_short_version(fixture(SHORT_VERSION).decode()) == "4.1.5"
    assert key_missing(fixture(KEY_MISSING).decode())
    assert not key_missing("defaults: something else went wrong\n")
    for text in ("", "4.1.5\n32281\n", "(\n    4\n)\n"):
        try:
            parse_short_version(text)
        except ParseError:
            continue
        raise AssertionError(text)


def test_no_app_is_an_empty_fact_and_runs_nothing() -> None:
    host = MacReplayHost(homes=["/Users/li"])
    outcome = _run(host)
    assert outcome.errors == [] and _clients(outcome) == [] and host.calls == []
    assert PROBES[pb.FACT_CHAT_CLIENTS] is mac.probe


def test_wechat_version_from_info_plist() -> None:
    host = MacReplayHost()
    host.with_tool("defaults")
    host.dirs[WECHAT_APP] = ["Contents"]
    host.commands[cmd.bundle_version(WECHAT_APP)] = out(SHORT_VERSION)
    outcome = _run(host)
    assert outcome.errors == []
    assert _clients(outcome) == [(WECHAT, "4.1.5", WECHAT_APP, "")]
    assert host.calls == [
        ("defaults", "read", f"{WECHAT_APP}/Contents/Info.plist", "CFBundleShortVersionString")
    ]


def test_a_missing_key_lists_the_app_with_the_reason() -> None:
    host = MacReplayHost()
    host.with_tool("defaults")
    host.dirs[WECHAT_APP] = ["Contents"]
    host.commands[cmd.bundle_version(WECHAT_APP)] = (1, b"", fixture(KEY_MISSING))
    ((app, version, _, why),) = _clients(_run(host))
    assert (app, version) == (WECHAT, "")
    assert why == "Info.plist has no CFBundleShortVersionString"


def test_wecom_in_a_users_applications_folder_without_defaults() -> None:
    # No recording of defaults on 企业微信.app exists; this replay has no defaults tool at all.
    home_app = "/Users/li/Applications/企业微信.app"
    host = MacReplayHost(homes=["/Users/li"])
    host.dirs[home_app] = ["Contents"]
    ((app, version, location, why),) = _clients(_run(host))
    assert (app, version, location) == (WECOM, "", "~/Applications/企业微信.app")
    assert "defaults is not installed" in why


def test_both_apps_are_looked_for_in_both_places() -> None:
    folders = {bundle.rsplit("/", 1)[0] for bundle, _ in _looked_for()}
    assert folders == {"/Applications", "/Users/li/Applications"}
    assert {name.rsplit("/", 1)[1] for name, _ in _looked_for()} == {"WeChat.app", WECOM_APP[14:]}


def _looked_for() -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    class Watching(MacReplayHost):
        def exists(self, path: str) -> bool:
            seen.append((path, ""))
            return False

    _run(Watching(homes=["/Users/li"]))
    return seen
