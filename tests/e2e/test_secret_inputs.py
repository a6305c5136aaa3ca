"""Secrets never travel on a command line (threat model row 5), where other users of the
computer could read them in the process list: no option of either CLI takes a token or a
credential, only a file holding it (or `-`, standard input); and a token typed where its file
goes is neither used nor echoed back. Real `devposture-agent` processes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from devposture.agent.cli import build_parser as agent_parser
from devposture.collector.cli import build_parser as collector_parser
from tests.e2e.conftest import AGENT, CollectorProcess, run

SECRET_WORDS = re.compile(r"token|credential|secret|password")


def _options(parser: argparse.ArgumentParser, prog: str = "") -> Iterator[tuple[str, str]]:
    """Every option string of every command, with the command's name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{prog} {name}".strip())
        for option in action.option_strings:
            yield prog, option


def test_no_command_line_option_takes_a_secret() -> None:
    found = [(f"devposture-agent {p}", o) for p, o in _options(agent_parser())]
    found += [(f"devposture-collector {p}", o) for p, o in _options(collector_parser())]
    secret_options = [(p, o) for p, o in found if SECRET_WORDS.search(o)]
    assert ("devposture-agent enroll", "--token-file") in secret_options
    assert ("devposture-collector report fleet", "--credential-file") in secret_options
    assert [(p, o) for p, o in secret_options if not o.endswith("-file")] == []


def test_a_token_typed_in_place_of_its_file_is_not_used_nor_echoed(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    token = c.token()
    secret = token.split("_", 2)[2]
    common = ["--collector", f"127.0.0.1:{c.enroll_port}", "--ca-fingerprint", c.fingerprint,
              "--state", str(tmp_path / "agent")]  # fmt: skip
    typed = run(AGENT, "enroll", "--token-file", token, *common)
    assert typed.returncode == 1
    assert "takes the path of a file holding the token, not the token" in typed.stderr
    assert f"token {token.split('_')[1]}" in typed.stderr and "token revoke" in typed.stderr
    assert secret not in typed.stderr + typed.stdout
    # From standard input it works, and the refusal above did not spend the token.
    piped = run(AGENT, "enroll", "--token-file", "-", *common, stdin=token + "\n")
    assert piped.returncode == 0, piped.stderr
