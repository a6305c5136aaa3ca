"""The commands the probes run are one declared list (agent/probes/commands.py), and the agent's
host runs nothing else: a reviewer reads the list whole and knows it is complete."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from devposture.agent.cli import live_host
from devposture.agent.host import LiveHost, UndeclaredCommandError
from devposture.agent.probes import commands as cmd
from devposture.agent.state import AgentState
from tests.agent.replay import ReplayHost

PROBES = Path(cmd.__file__).parent
posix_only = pytest.mark.skipif(os.name != "posix", reason="runs touch(1)")


def test_every_declared_command_is_declared_once_for_a_known_system() -> None:
    fixed = [d.argv for d in cmd.DECLARED]
    assert len(fixed) == len(set(fixed))
    assert all(d.systems and set(d.systems) <= {cmd.LINUX, cmd.MACOS, cmd.WINDOWS} and d.reads
               for d in cmd.DECLARED)  # fmt: skip


def test_the_commands_that_vary_are_declared_only_in_their_shape() -> None:
    for conf in cmd.FRESHCLAM_CONFS:
        assert cmd.is_declared(cmd.freshclam_conf_grep(conf))
    assert not cmd.is_declared(cmd.freshclam_conf_grep("/home/user/.ssh/id_rsa"))
    assert cmd.is_declared(cmd.bundle_version("/Applications/企业微信.app"))
    assert cmd.is_declared(cmd.bundle_version("/Users/li/Applications/WeChat.app"))
    assert not cmd.is_declared(("defaults", "read", "/Library/Preferences/x.plist",
                                cmd.BUNDLE_VERSION_KEY))  # fmt: skip
    keys = [cmd.uninstall_query(v, c) for v in cmd.UNINSTALL_VIEWS
            for c in cmd.WECHAT_PRODUCT_CODES + cmd.WECOM_PRODUCT_CODES]  # fmt: skip
    assert len(keys) == 6 and all(cmd.is_declared(k) for k in keys)
    assert not cmd.is_declared(cmd.uninstall_query(cmd.UNINSTALL_VIEWS[0], "Chrome"))
    assert not cmd.is_declared(("reg", "query", r"HKLM\SAM\SAM"))
    # One more or one fewer argument is another command.
    assert not cmd.is_declared((*cmd.NFT_RULESET, "--extra"))
    assert not cmd.is_declared(cmd.NFT_RULESET[:-1])


@posix_only
def test_the_agents_host_refuses_an_undeclared_command_before_it_starts(
    tmp_path: Path,
) -> None:
    made = tmp_path / "made"
    host = live_host(AgentState(tmp_path / "state"))
    with pytest.raises(UndeclaredCommandError, match="not in the agent's declared list"):
        host.run(["touch", str(made)], timeout=5)
    assert not made.exists()
    # The same host, without the list, runs it: it was the list that refused.
    LiveHost().run(["touch", str(made)], timeout=5)
    assert made.exists()


def test_the_tests_replaying_host_refuses_an_undeclared_command() -> None:
    host = ReplayHost().with_tool("curl")
    host.commands[("curl", "https://example.com")] = (0, b"", b"")
    with pytest.raises(AssertionError, match="not declared"):
        host.run(["curl", "https://example.com"], timeout=5)


def _tools() -> set[str]:
    return {str(d.argv[0]) for d in cmd.DECLARED} | {"powershell", "powershell.exe"}


def _argv_like(parts: list[ast.expr], tools: set[str]) -> bool:
    """A tool's name followed by text (or a constant's name) only: ("nft", "-j", ...), not
    ("nft", _nft)."""
    if not parts or not isinstance(parts[0], ast.Constant) or parts[0].value not in tools:
        return False
    return all(
        isinstance(part, ast.Constant | ast.JoinedStr | ast.Starred)
        or (isinstance(part, ast.Name) and part.id.isupper())  # a constant: AU_KEY
        for part in parts[1:]
    )


def test_no_probe_writes_a_command_of_its_own() -> None:
    """No list or tuple starting with a tool's name anywhere in the probes but the list: an
    argv written inline would be run (the host checks it) yet read nowhere a reviewer looks."""
    tools, found = _tools(), []
    for path in PROBES.rglob("*.py"):
        if path.name == "commands.py" and path.parent == PROBES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.List | ast.Tuple) and _argv_like(node.elts, tools):
                found.append(f"{path.relative_to(PROBES)}:{node.lineno}")
    assert not found, found
