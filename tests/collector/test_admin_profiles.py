"""Remote profiles in admin.toml: a real collector's admin port (real TLS) reached with
`--profile NAME` or the default profile instead of typing --collector, --ca-fingerprint and
--credential-file; the file read strictly, and never holding the secret itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.admin.profiles import profiles_path
from devposture.collector.cli import main as collector_cli
from devposture.collector.credentials import VIEWER
from tests.collector.test_admin import AdminCollector, admin_collector
from tests.conftest import enroll_agent


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("DEVPOSTURE_DATA", raising=False)
    return tmp_path / "config" / "devposture"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[AdminCollector]:
    with admin_collector(tmp_path / "collector") as running:
        yield running


def _profiles(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "admin.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _profile(collector: AdminCollector, name: str, credential_file: str) -> str:
    return (
        f'[{name}]\ncollector = "127.0.0.1:{collector.admin_port}"\n'
        f'ca_fingerprint = "{collector.live.ca_fingerprint}"\n'
        f'credential_file = "{credential_file}"\n'
    )


def test_the_default_profile_and_profile_name_reach_the_collector(
    collector: AdminCollector, config_home: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    device = enroll_agent(collector.live, tmp_path / "agent", hostname="laptop-1")
    device_id = device.enrollment.device_id
    config_home.mkdir(parents=True)
    credential = config_home / "wang-fang.credential"
    credential.write_text(collector.credential("Wang Fang (audit)", VIEWER) + "\n")
    credential.chmod(0o600)
    # A relative credential_file is read beside admin.toml.
    path = _profiles(config_home, '[defaults]\nprofile = "hq"\n\n'
                     + _profile(collector, "hq", "wang-fang.credential"))  # fmt: skip
    assert path == profiles_path()
    assert collector_cli(["device", "show", device_id[:6], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["device"] == device_id
    assert collector_cli(["report", "fleet", "--profile", "hq", "--format", "json"]) == 0
    assert all(row["devices"] == 1 for row in json.loads(capsys.readouterr().out))
    entries = [(e.command, e.actor) for e in collector.audit()]
    assert entries == [
        ("device list", "Wang Fang (audit)"),  # the prefix looked up, with the same credential
        ("device show", "Wang Fang (audit)"),
        ("report fleet", "Wang Fang (audit)"),
    ]
    # --data runs on the data folder, default profile or not.
    data = str(collector.live.config.data_dir)
    assert collector_cli(["device", "list", "--data", data, "--format", "json"]) == 0
    assert collector.audit()[-1].actor.startswith("local:")


def test_a_profile_never_holds_the_secret_and_mistakes_are_named_with_their_line(
    collector: AdminCollector, config_home: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    secret = collector.credential("Li Wei (IT)", VIEWER)
    _profiles(config_home, _profile(collector, "hq", "x.credential") + f'credential = "{secret}"\n')
    assert collector_cli(["report", "fleet", "--profile", "hq"]) == 1
    err = capsys.readouterr().err
    assert "admin.toml:5: [hq] credential: a profile never holds the secret itself" in err
    assert secret not in err
    with monkeypatch.context() as chinese:  # in the reader's language
        chinese.setenv("LANG", "zh_CN.UTF-8")
        assert collector_cli(["report", "fleet", "--profile", "hq"]) == 1
    err = capsys.readouterr().err
    assert "[hq] credential：配置文件中不能写入凭据本身" in err and secret not in err
    assert collector.audit() == []  # refused before anything was sent
    _profiles(config_home, _profile(collector, "hq", "x").replace("collector =", "colector ="))
    assert collector_cli(["report", "fleet", "--profile", "hq"]) == 1
    err = capsys.readouterr().err
    assert ":2: [hq] colector is not a setting of [hq]: did you mean collector?" in err
    assert "[hq] collector is missing" in err
    _profiles(config_home, '[defaults]\nprofile = "branch"\n' + _profile(collector, "hq", "x"))
    assert collector_cli(["report", "fleet"]) == 1
    assert "profile = 'branch' names no profile: write one of hq" in capsys.readouterr().err


def test_an_unknown_profile_names_the_ones_there_are(
    collector: AdminCollector, config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert collector_cli(["report", "fleet", "--profile", "hq"]) == 1
    err = capsys.readouterr().err
    assert f"there is no profiles file {config_home / 'admin.toml'}" in err
    assert 'collector = "collector.example.com:7445"' in err  # what to write
    _profiles(config_home, _profile(collector, "hq", "x") + "\n" + _profile(collector, "eu", "y"))
    assert collector_cli(["report", "fleet", "--profile", "branch"]) == 1
    assert "has no [branch] section (profiles: eu, hq)" in capsys.readouterr().err
