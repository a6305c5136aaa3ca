"""The admin commands (`report fleet`, `device list`, ...) start without loading what only
`serve` needs: the gRPC server and its services, the dashboard (starlette, jinja2, uvicorn),
the metrics endpoint, the remote admin client, and psycopg on a SQLite site. Each command is a
new process, so whatever it imports is paid on every run (bench/fleet_report.py times `report
fleet` as a process). Checked on each engine the suite runs on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import init_arguments, on_postgresql

# Modules (and packages: any module under them) that no admin command may load: grpc and
# cryptography (about 0.1 s each to import) are for serving and for the PKI commands only.
SERVE_ONLY = (
    "grpc",
    "cryptography",
    "devposture.collector.pki",
    "devposture.collector.trust",
    "devposture.collector.intake",
    "devposture.collector.server",
    "devposture.collector.service",
    "devposture.collector.ingest",
    "devposture.collector.metrics",
    "devposture.collector.web",
    "devposture.collector.admin.client",
    "devposture.collector.admin.service",
    "starlette",
    "jinja2",
    "uvicorn",
    "prometheus_client",
    # Only `--format xlsx` writes a workbook, only `completion` prints a script.
    "openpyxl",
    "shtab",
)

# What a command starts without on a SQLite site, though modules it loads could use each
# (about 5-10 ms of every command's start each): TLS (`os_errors` asks whether an error is
# ssl's only where ssl was loaded), the email package (read where a settings file names an
# address), multiprocessing (the frozen program's children only; serve's writer and the
# export's workers import it themselves), logging.handlers (a service's rotated log file only)
# and socket (the host's name where a collector names itself). psycopg loads ssl and socket on
# PostgreSQL.
STARTED_WITHOUT = ("ssl", "email", "multiprocessing", "logging.handlers", "socket")

# Parts of the store (and what they import) that none of these commands asks for: a Store
# imports a part's module when it is first asked for it (collector/store/__init__.py), and
# importing them all was 35-60 ms of every command's start on a slow VM.
PARTS_UNUSED = (
    "devposture.collector.store.crosscheck",
    "devposture.collector.evidence.crosscheck",
    "devposture.collector.store.dashboard_reads",
    "devposture.collector.store.device_pages",
    "devposture.collector.store.alerts",
    "devposture.collector.store.checkpoints",
    "devposture.collector.store.coordination",
)

# What judges a report (the checks, and the protobuf messages they read): a command reads the
# policy's check ids and parameters (`devposture.policy.check_parameters`), never a report.
NOT_JUDGING = ("devposture.policy.checks", "google.protobuf", "devposture.v1")

# Runs the CLI's `main` in this interpreter, then prints the modules it loaded.
_RUN = """
import json, sys
from devposture.collector.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

COMMANDS = [
    ["report", "fleet"],
    ["report", "fleet", "--as-of", "2026-11-01"],
    ["report", "failing", "--format", "json"],
    ["device", "list"],
    ["token", "list"],
    ["policy", "default"],
]


def _loaded(arguments: list[str], expect: int = 0) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *arguments],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == expect, done.stderr
    return set(result["modules"])


def _under(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-imports") / "collector"
    subprocess.run(
        [sys.executable, "-m", "devposture.collector", "init", "--data", str(folder),
         *init_arguments()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return folder


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_admin_command_does_not_load_the_server(data: Path, command: list[str]) -> None:
    arguments = [*command, "--data", str(data)] if command[0] != "policy" else command
    modules = _loaded(arguments)
    assert _under(modules, SERVE_ONLY) == []
    assert _under(modules, PARTS_UNUSED) == []
    assert _under(modules, NOT_JUDGING) == []
    if not on_postgresql():  # a SQLite site may not even have psycopg installed
        assert _under(modules, ("psycopg", "psycopg_pool")) == []
        assert _under(modules, STARTED_WITHOUT) == []


def test_serve_still_loads_them(tmp_path: Path) -> None:
    """The check above must be able to fail: `serve` does import the server (deferred to
    its handler, which imports it before reading the data folder: this one has none)."""
    modules = _loaded(["serve", "--data", str(tmp_path / "none")], expect=1)
    assert "devposture.collector.server" in modules
    assert _under(modules, ("starlette", "jinja2", "uvicorn")) != []
    assert _under(modules, NOT_JUDGING) != []  # the checks judge each report it receives


def test_an_audit_check_loads_the_part_it_asks_for(data: Path) -> None:
    """The check of the store's parts above can fail: `audit check` asks the store for its
    crosscheck part, whose module is then imported."""
    modules = _loaded(["audit", "check", "--data", str(data)])
    assert "devposture.collector.store.crosscheck" in modules
