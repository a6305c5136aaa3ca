"""Every message of the agent's command line, for the catalogs (`devposture.policy.cli_catalog`):
its errors and sentences, found in the modules below, and its help texts, found in its
parser. `make catalogs` adds them to the `.po` files; the catalog test fails on one without
its Chinese, and on an English put together at run time."""

from __future__ import annotations

from pathlib import Path

from devposture.agent import cli, enroll, first_start, install_setup, renewal_exchange
from devposture.agent.host import bundle
from devposture.policy import cli_catalog

_HERE = Path(__file__).parent
# The modules whose words a person reads from `devposture-agent` (besides the shared ones,
# `cli_catalog.SHARED`); enrolling's are imported too (`cli` imports them only to enroll), so
# that their error classes are known by name.
SOURCES: tuple[Path, ...] = tuple(
    _HERE / name
    for name in ("cli.py", "enroll_diagnosis.py", "enroll.py", "first_start.py", "settings.py",
                 "state.py", "renewal.py", "renewal_exchange.py", "install_setup.py",
                 "host/bundle.py", "deliver.py", "public_status.py", "toml_edit.py")
)  # fmt: skip
_LOADED = (enroll.EnrollError, first_start.PlanError, renewal_exchange.RenewalError,
           install_setup.SetupError, bundle.BundleError)  # fmt: skip


def mistakes() -> list[str]:
    return cli_catalog.mistakes(SOURCES)


def raw_lines() -> list[str]:
    return cli_catalog.raw_lines(SOURCES)


def every_message() -> list[tuple[str, str]]:
    return cli_catalog.every_message(SOURCES, cli.build_parser())
