"""agent.toml, the environment and the command line: which one wins, every refusal with its line
and its fix, the places per OS, the example in docs/agent-configuration.md, and every agent
command refusing a bad file before doing anything (real processes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devposture.agent.settings import (
    ENV,
    KEYS,
    SCHEMA,
    ConfigError,
    Overrides,
    Settings,
    config_locations,
    load,
)
from devposture.net.address import CollectorAddress
from devposture.net.proxy import HttpsProxy
from devposture.policy.toml_lines import line_of

DOCS = Path(__file__).parents[2] / "docs" / "agent-configuration.md"
AGENT = str(Path(sys.executable).parent / "devposture-agent")
PIN = "sha256:" + "c0" * 32
OTHER_PIN = "sha256:" + "0d" * 32

FULL = f"""\
# written by IT

[collector]
addresses = ["collector.corp.example:7443", "10.20.0.5:7443"]
ca_fingerprint = "{PIN}"

[enrollment]
file = "/etc/devposture/enroll.token"

[state]
folder = "/srv/file-state"
public_folder = "/srv/file-public"

[logging]
format = "json"
level = "error"
file = "/var/log/devposture/agent.log"

[network]
https_proxy = "http://proxy.corp.example:3128"

[backups]
folders = ["/srv/wechat-backups", "~/Backups"]
"""


def _file(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _load(path: Path | None, env: dict[str, str] | None = None, **cli: object) -> Settings:
    return load(Overrides(config=path, **cli), env or {}, "linux")  # type: ignore[arg-type]


def _refused(path: Path, env: dict[str, str] | None = None, **cli: object) -> str:
    with pytest.raises(ConfigError) as refused:
        _load(path, env, **cli)
    return str(refused.value)


def _line(text: str, needle: str) -> int:
    (found,) = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith(needle)]
    return found


# -- precedence ------------------------------------------------------------------------------


def test_with_nothing_given_the_defaults_hold() -> None:
    if Path("/etc/devposture/agent.toml").exists():
        pytest.skip("this machine has an agent.toml at the default place")
    settings = load(Overrides(), {}, "linux")
    assert settings.config_file is None  # a missing default file is fine
    assert settings.state_dir == Path("/var/lib/devposture-agent")
    assert settings.public_dir == Path("/run/devposture-agent")
    assert settings.enrollment_file == Path("/etc/devposture/enroll.token")
    assert settings.log_format == "text" and settings.log_level is None
    assert settings.collectors == () and settings.ca_fingerprint is None
    assert settings.https_proxy is None and settings.backup_folders == ()
    assert set(settings.origins.values()) == {"default"}


def test_the_file_overrides_the_defaults(tmp_path: Path) -> None:
    path = _file(tmp_path, FULL)
    settings = _load(path)
    assert settings.config_file == path
    assert settings.collectors == (
        CollectorAddress("collector.corp.example", 7443), CollectorAddress("10.20.0.5", 7443),
    )  # fmt: skip
    assert settings.ca_fingerprint == PIN
    assert settings.state_dir == Path("/srv/file-state")
    assert settings.public_dir == Path("/srv/file-public")
    assert settings.log_format == "json" and settings.log_level == "error"
    assert settings.log_file == Path("/var/log/devposture/agent.log")
    assert settings.https_proxy == HttpsProxy("proxy.corp.example", 3128)
    assert settings.backup_folders == ("/srv/wechat-backups", "~/Backups")
    assert settings.origins["state"] == f"{path}:{_line(FULL, 'folder =')}"


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "DEVPOSTURE_AGENT_COLLECTORS": "a.example:1, b.example:2",
        "DEVPOSTURE_AGENT_CA_FINGERPRINT": OTHER_PIN,
        "DEVPOSTURE_AGENT_STATE": "/srv/env-state",
        "DEVPOSTURE_AGENT_PUBLIC_FOLDER": "/srv/env-public",
        "DEVPOSTURE_AGENT_ENROLLMENT_FILE": "/run/enroll.token",
        "DEVPOSTURE_AGENT_LOG_FORMAT": "text",
        "DEVPOSTURE_AGENT_LOG_LEVEL": "DEBUG",
        "DEVPOSTURE_AGENT_LOG_FILE": "-",
        "DEVPOSTURE_AGENT_HTTPS_PROXY": "http://env-proxy:8080",
        "DEVPOSTURE_AGENT_BACKUP_FOLDERS": "/env/a:/env/b",
    }
    assert set(env) == set(ENV.values())
    settings = _load(_file(tmp_path, FULL), env)
    assert settings.collectors == (
        CollectorAddress("a.example", 1), CollectorAddress("b.example", 2),
    )  # fmt: skip
    assert settings.ca_fingerprint == OTHER_PIN
    assert settings.state_dir == Path("/srv/env-state")
    assert settings.public_dir == Path("/srv/env-public")
    assert settings.enrollment_file == Path("/run/enroll.token")
    assert settings.log_format == "text" and settings.log_level == "debug"
    assert settings.log_file == Path("-")  # standard error
    assert settings.https_proxy == HttpsProxy("env-proxy", 8080)
    assert settings.backup_folders == ("/env/a", "/env/b")
    assert settings.origins["state"] == "DEVPOSTURE_AGENT_STATE"


def test_the_command_line_overrides_the_environment_and_the_file(tmp_path: Path) -> None:
    env = {"DEVPOSTURE_AGENT_STATE": "/srv/env-state", "DEVPOSTURE_AGENT_LOG_FORMAT": "text",
           "DEVPOSTURE_AGENT_HTTPS_PROXY": "http://env-proxy:8080",
           "DEVPOSTURE_AGENT_BACKUP_FOLDERS": "/env/a"}  # fmt: skip
    settings = _load(
        _file(tmp_path, FULL), env, state=Path("cli-state"), public_folder=Path("cli-public"),
        log_format="json",
        https_proxy="http://cli-proxy:1", backup_folders=("/cli/a",),
        collectors=("cli.example:9",), ca_fingerprint="C0" * 32,
        enrollment_file=Path("/cli/enroll.token"), log_level="warning",
        log_file=Path("cli.log"),
    )  # fmt: skip
    assert settings.state_dir == Path("cli-state")  # relative on the command line: as typed
    assert settings.public_dir == Path("cli-public")
    assert settings.log_format == "json" and settings.log_level == "warning"
    assert settings.log_file == Path("cli.log")
    assert settings.https_proxy == HttpsProxy("cli-proxy", 1)
    assert settings.backup_folders == ("/cli/a",)
    assert settings.collectors == (CollectorAddress("cli.example", 9),)
    assert settings.ca_fingerprint == PIN  # normalized
    assert settings.enrollment_file == Path("/cli/enroll.token")
    assert set(settings.origins.values()) == {"command line"}


def test_the_file_is_named_by_the_environment_unless_the_command_line_names_one(
    tmp_path: Path,
) -> None:
    by_env = _file(tmp_path, '[logging]\nformat = "json"\n', "env.toml")
    by_cli = _file(tmp_path, '[logging]\nformat = "text"\n', "cli.toml")
    env = {"DEVPOSTURE_AGENT_CONFIG": str(by_env)}
    assert load(Overrides(), env, "linux").log_format == "json"
    assert load(Overrides(config=by_cli), env, "linux").log_format == "text"


# -- where the file is -----------------------------------------------------------------------


def test_the_places_per_os() -> None:
    assert [p.path for p in config_locations("linux")] == ["/etc/devposture/agent.toml"]
    mac = config_locations("darwin")  # the profile first: it is the stronger
    assert mac[0].path == "/Library/Managed Preferences/com.devposture.agent.plist"
    assert mac[1].path == "/Library/Application Support/devposture/agent.toml"
    assert mac[0].read and mac[1].read
    windows = config_locations("win32")
    assert windows[0].path.endswith(r"devposture\agent.toml") or windows[0].path.endswith(
        "devposture/agent.toml"
    )
    assert "Policies" in windows[1].path and not windows[1].read


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert "does not exist" in _refused(missing)
    with pytest.raises(ConfigError, match="does not exist"):
        load(Overrides(), {"DEVPOSTURE_AGENT_CONFIG": str(missing)}, "linux")


def test_a_folder_or_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    assert "is a folder" in _refused(tmp_path)
    text = _refused(_file(tmp_path, "[logging\nformat = 'text'\n"))
    assert "not valid TOML" in text and "fix that line" in text


# -- every refusal, with its line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle", "says"),
    [
        ("[loging]\nformat = \"json\"\n", "[loging]",
         "[loging] is not a section of agent.toml: did you mean [logging]?"),
        ("[logging]\nformats = \"json\"\n", "formats",
         "[logging] formats is not a setting of [logging]: did you mean format?"),
        ("[network]\nfolders = [\"/a\"]\n", "folders",
         "it belongs under [backups]; move it there"),
        ("https_proxy = \"http://p:1\"\n", "https_proxy",
         "https_proxy is outside any section: move it under [network]"),
        ("logging = \"json\"\n", "logging", "logging must be the section [logging], not a value"),
        ("[collector]\naddresses = \"collector.corp.example:7443\"\n", "addresses",
         "[collector] addresses must be a list of texts in quotes, in brackets, not"
         " 'collector.corp.example:7443': write e.g. `addresses ="
         " [\"collector.corp.example:7443\"]`"),
        ("[collector]\naddresses = [\"collector.corp.example\"]\n", "addresses",
         "[collector] addresses: 'collector.corp.example' is not HOST:PORT"),
        ("[collector]\nca_fingerprint = \"sha256:1234\"\n", "ca_fingerprint",
         "[collector] ca_fingerprint: a CA fingerprint is 64 hexadecimal digits"),
        ("[collector]\nca_fingerprint = 1234\n", "ca_fingerprint",
         "[collector] ca_fingerprint must be a text in quotes, not 1234"),
        ("[enrollment]\nfile = \"enroll.token\"\n", "file",
         "[enrollment] file: 'enroll.token' is not an absolute path: write the whole path"),
        ("[state]\nfolder = \"state\"\n", "folder",
         "[state] folder: 'state' is not an absolute path"),
        ("[state]\nfolder = true\n", "folder", "[state] folder must be a text in quotes, not true"),
        ("[logging]\nformat = \"xml\"\n", "format", "[logging] format: must be 'text' or 'json'"),
        ("[logging]\nlevel = \"loud\"\n", "level",
         "[logging] level: must be one of 'debug', 'info', 'warning', 'error', not 'loud'"),
        ("[network]\nhttps_proxy = \"https://p:3128\"\n", "https_proxy",
         "[network] https_proxy: the proxy's scheme must be http"),
        ("[network]\nhttps_proxy = \"http://li:pw@p:3128\"\n", "https_proxy",
         "user name and password is not supported"),
        ("[backups]\nfolders = [\"/srv/a\", 7]\n", "folders",
         "[backups] folders must be a list of texts in quotes, in brackets"),
        ("[backups]\nfolders = [\"relative/b\"]\n", "folders",
         "[backups] folders: 'relative/b' is not an absolute path"),
    ],
)  # fmt: skip
def test_every_mistake_is_refused_with_its_line_and_fix(
    tmp_path: Path, text: str, needle: str, says: str
) -> None:
    body = "# agent.toml\n\n" + text
    path = _file(tmp_path, body)
    message = _refused(path)
    assert message.startswith(f"{path}:{_line(body, needle)}: "), message
    assert says in message, message


def test_every_mistake_is_found_in_one_go(tmp_path: Path) -> None:
    body = FULL.replace('format = "json"', 'format = "xml"').replace(
        'folder = "/srv/file-state"', 'folder = "state"'
    ) + "[extra]\nkey = 1\n"
    message = _refused(_file(tmp_path, body))
    lines = message.splitlines()
    assert len(lines) == 4 and lines[-1].endswith("3 problems; fix each, then run again")
    assert [int(re.findall(r":(\d+): ", line)[0]) for line in lines[:3]] == [
        _line(body, "folder ="), _line(body, "format"), _line(body, "[extra]"),
    ]  # fmt: skip


def test_an_empty_value_in_the_file_means_the_default(tmp_path: Path) -> None:
    settings = _load(_file(tmp_path, '[network]\nhttps_proxy = ""\n[collector]\naddresses = []\n'))
    assert settings.https_proxy is None and settings.collectors == ()


def test_a_bad_variable_or_option_is_named(tmp_path: Path) -> None:
    assert _refused(None, {"DEVPOSTURE_AGENT_LOG_LEVEL": "loud"}).startswith(  # type: ignore[arg-type]
        "$DEVPOSTURE_AGENT_LOG_LEVEL='loud': must be one of"
    )
    assert _refused(None, {"DEVPOSTURE_AGENT_COLLECTORS": "a.example"}).startswith(  # type: ignore[arg-type]
        "$DEVPOSTURE_AGENT_COLLECTORS='a.example': 'a.example' is not HOST:PORT"
    )
    assert _refused(None, https_proxy="proxy:3128").startswith(  # type: ignore[arg-type]
        "--https-proxy: the proxy 'proxy:3128' has no scheme"
    )
    assert _refused(None, ca_fingerprint="12345").startswith(  # type: ignore[arg-type]
        "--ca-fingerprint: a CA fingerprint is 64 hexadecimal digits"
    )


def test_every_key_has_an_environment_variable_and_a_place_in_the_schema() -> None:
    assert set(ENV) == set(KEYS)
    assert {(section, key) for section, keys in SCHEMA.items() for key in keys} == set(
        KEYS.values()
    )
    assert all(v.startswith("DEVPOSTURE_AGENT_") for v in ENV.values())


# -- the reference ---------------------------------------------------------------------------


def _docs_example() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Example", 1)[1]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert blocks, "docs/agent-configuration.md has no ```toml example"
    return str(blocks[0])


def test_the_example_in_the_docs_is_accepted_whole(tmp_path: Path) -> None:
    example = _docs_example()
    settings = _load(_file(tmp_path, example))
    written = {
        (section, key) for section, keys in SCHEMA.items() for key in keys
        if line_of(example, (section, key)) is not None
        and re.search(rf"(?m)^{key} =", example)
    }  # fmt: skip
    assert written == set(KEYS.values()), "the example shows every key"
    assert settings.collectors[0] == CollectorAddress("collector.corp.example", 7443)
    assert settings.https_proxy == HttpsProxy("proxy.corp.example", 3128)
    assert settings.enrollment_file == Path("/etc/devposture/enroll.token")


def test_the_docs_name_every_key_and_variable() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, (section, key) in KEYS.items():
        assert f"`[{section}] {key}`" in text, key
        assert f"`{ENV[name]}`" in text, ENV[name]


# -- every command refuses a bad file (real processes) ---------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["config"], ["status", "--local"], ["collect", "--json"], ["once"], ["renew"],
        ["run"], ["enroll", "--token-file", "-"],
    ],
)  # fmt: skip
def test_every_command_refuses_a_bad_file_before_doing_anything(
    tmp_path: Path, argv: list[str]
) -> None:
    body = '[logging]\nlevle = "info"\n'
    path = _file(tmp_path, body)
    state = tmp_path / "state"
    done = subprocess.run(
        [AGENT, *argv, "--config", str(path), "--state", str(state)],
        capture_output=True, text=True, timeout=120, check=False, input="",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"devposture-agent: error: {path}:2: [logging] levle is not a setting of [logging]:"
        " did you mean level?"
    ), done.stderr
    assert not state.exists()


def test_config_shows_each_setting_and_where_it_comes_from(tmp_path: Path) -> None:
    path = _file(tmp_path, FULL)
    done = subprocess.run(
        [AGENT, "--log-format", "text", "config", "--config", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"DEVPOSTURE_AGENT_STATE": "/srv/env-state", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"configuration file: {path}" in out
    assert "[state] folder = /srv/env-state    <- DEVPOSTURE_AGENT_STATE" in out
    assert "[logging] format = text    <- command line" in out
    assert f"[network] https_proxy = http://proxy.corp.example:3128    <- {path}:" in out
