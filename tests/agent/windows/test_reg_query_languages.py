"""`reg query` saying a key does not exist, in the languages of machines the first fixtures did not
cover (Japanese, Traditional Chinese), through their console code pages. Sources: the
"reg_query" table of tests/fixtures/windows/README.md."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.reg_query import key_missing, parse_reg_query
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.windows import updates
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

# (file stem, console code page of the machine that prints it)
MISSING = [
    ("reg_query/not-found-ja", "cp932"),
    ("reg_query/not-found-zh-tw", "cp950"),
]
_REG_MISSING = 1  # reg query's documented exit status for a missing key


@pytest.mark.parametrize(("stem", "code_page"), MISSING)
def test_a_missing_key_in_japanese_and_traditional_chinese(stem: str, code_page: str) -> None:
    console = fixture(f"{stem}.{code_page}-crlf.txt")
    assert decode_output(console, code_page) == fixture(f"{stem}.utf8.txt").decode()
    printed = decode_output(console, code_page)
    assert key_missing(printed)
    with pytest.raises(ParseError):
        parse_reg_query(printed)


@pytest.mark.parametrize(("stem", "code_page"), MISSING)
def test_no_update_policy_key_reads_as_windows_default(stem: str, code_page: str) -> None:
    # No AU policy key is Windows' default (updates install automatically). On a Japanese or
    # Traditional Chinese machine the message was not recognised: PARSE_ERROR, so the update
    # policy was unknown on every such machine without a policy.
    host = WindowsReplayHost(console_encoding=code_page)
    host.record(cmd.REG_AU, output(f"{stem}.{code_page}-crlf.txt", _REG_MISSING))
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    assert updates._automatic(ctx) is True
