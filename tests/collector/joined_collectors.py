"""Two collectors on one PostgreSQL for the CA rollover tests: A, whose folder runs the
rollover, and B, joined to it (`init --join`) and serving as a process of its own, whose `ca/`
IT must copy after each step (docs/scaling.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from devposture.collector import cli_pki
from devposture.collector.config import CollectorConfig
from devposture.collector.datadir import initialize
from devposture.collector.join import join
from tests.databases import fresh_postgres
from tests.ports import free_ports
from tests.waiting import wait_until

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")


@dataclass(frozen=True)
class Pair:
    first: CollectorConfig
    first_ca: x509.Certificate
    second: CollectorConfig
    enroll_port: int  # the second's
    report_port: int


def set_settings(config: CollectorConfig, settings: Iterable[tuple[str, str, str]]) -> None:
    """Set each (section, key, value) in the folder's collector.toml, where `init` wrote it."""
    path = config.data_dir / "collector.toml"
    text = path.read_text(encoding="utf-8")
    for section, key, value in settings:
        text, found = re.subn(rf"(?ms)^(\[{section}\].*?^{key} = )\S+$", rf"\g<1>{value}", text,
                              count=1)  # fmt: skip
        assert found == 1, (section, key)
    path.write_text(text, encoding="utf-8")


def configured_alone(config: CollectorConfig, admin: int, metrics: int) -> None:
    """Own admin and metrics ports, no dashboard, no drain, no per-device limit in the way:
    several collectors on one machine, each its own process."""
    set_settings(config, (("admin", "port", str(admin)), ("metrics", "port", str(metrics)),
                          ("web", "enabled", "false"), ("server", "drain_seconds", "0"),
                          ("limits", "device_calls_per_minute", "100000"),
                          ("limits", "device_call_burst", "100000")))  # fmt: skip


@contextmanager
def second_serving(tmp_path: Path) -> Iterator[Pair]:
    """A initialized on a new PostgreSQL database, B joined to it and serving until the block
    ends (`tmp_path/a`, `tmp_path/b`)."""
    first, first_ca = initialize(tmp_path / "a", "127.0.0.1", database=fresh_postgres())
    enroll_port, report_port = free_ports(2)
    second, _ = join(tmp_path / "b", first.data_dir, "127.0.0.1",
                     enroll_port=enroll_port, report_port=report_port)  # fmt: skip
    configured_alone(second, *free_ports(2))
    ready = tmp_path / "b.ready"
    process = subprocess.Popen(
        [COLLECTOR, "serve", "--data", str(second.data_dir), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, "b serving")
        assert process.poll() is None, process.communicate()[1]
        yield Pair(first, first_ca, second, enroll_port, report_port)
    finally:
        process.terminate()
        process.communicate(timeout=60)


def copy_ca(source: CollectorConfig, destination: CollectorConfig) -> None:
    """What IT does after each step of a rollover (docs/scaling.md): copy `ca/` over."""
    shutil.copytree(source.data_dir / "ca", destination.data_dir / "ca", dirs_exist_ok=True)


def rollover(step: str, config: CollectorConfig, capsys: pytest.CaptureFixture[str],
             *more: str) -> tuple[int, str, str]:  # fmt: skip
    """`ca rollover STEP` on `config`'s folder: its exit code, stdout and stderr."""
    code = cli_pki.main(["ca", "rollover", step, *more, "--data", str(config.data_dir)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
