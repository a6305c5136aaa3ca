"""Every message of the agent's command line, for the catalogs (`devposture.policy.cli_catalog`):
its errors and sentences, found in the modules below, and its help texts, found in its
parser. `make catalogs` adds them to the `.po` files; the catalog test fails on one without
its Chinese, and on an English put together at run time."""

from __future__ import annotations

from pathlib import Path

from devposture.agent import cli
from devposture.policy import cli_catalog

_HERE = Path(__file__).parent
# The modules whose words a person reads from `devposture-agent`.
SOURCES: tuple[Path, ...] = (_HERE / "cli.py", _HERE / "enroll_diagnosis.py")


def mistakes() -> list[str]:
    return cli_catalog.mistakes(SOURCES)


def every_message() -> list[tuple[str, str]]:
    return cli_catalog.every_message(SOURCES, cli.build_parser())
