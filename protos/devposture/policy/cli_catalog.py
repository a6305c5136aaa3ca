"""What the catalogs need from a command line: the English of its errors and sentences, found
where they are written (`cli_messages.extract`, msgctxt "cli"), of its help texts, found by
walking its parser (`cli_help.help_messages`, msgctxt "cli.help"), and argparse's own words.
Each command line names its modules and its parser (`agent/cli_words.py`,
`collector/cli_words.py`); this is the one way both are read."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from devposture import config_file, policy
from devposture.net import address, enrollment_value, pinning, proxy, rpc_status, tls_probe
from devposture.policy import cli_help, cli_messages, os_errors, time_zone
from devposture.policy.cli_messages import CONTEXT, Worded, extract, worded_classes

# The shared modules whose errors reach a person through both command lines: a configuration
# file's problems, line by line, reaching a collector (its address, the proxy, the CA
# pinning, the TLS diagnosis, an enrollment value, a call's status), the policy file's
# problems, and the system's words for an OSError. Imported, so that their error classes are
# known by name.
SHARED: tuple[Path, ...] = tuple(
    Path(module.__file__ or "")
    for module in (config_file, address, enrollment_value, pinning, proxy, tls_probe,
                   rpc_status, cli_messages, os_errors, policy, time_zone)
)  # fmt: skip


def mistakes(sources: Iterable[Path]) -> list[str]:
    """The calls whose English is put together at run time (`file:line`): no catalog can
    hold it."""
    return extract((*SHARED, *sources), worded_classes(Worded))[1]


def raw_lines(sources: Iterable[Path]) -> list[str]:
    """The lines printed with their English written in place (`file:line`): no catalog can
    word them."""
    return cli_messages.raw_lines((*SHARED, *sources))


def every_message(
    sources: Iterable[Path], parser: argparse.ArgumentParser
) -> list[tuple[str, str]]:
    """(context, English msgid) of every error, sentence and help text of a command line."""
    found = extract((*SHARED, *sources), worded_classes(Worded))[0]
    errors = [(CONTEXT, english) for english in found]
    helps = [(cli_help.CONTEXT, text) for text in cli_help.help_messages(parser)]
    return errors + helps + cli_help.every_argparse_message()
