"""`devposture-agent setup` and `cleanup`, what every installer runs: the real program on this
computer's files (the MSI's custom action and the macOS package's scripts call exactly these
command lines). On Windows the same code runs icacls and sc.exe, which cannot run here: those
tests record the command lines instead and check them against Windows' documented syntax."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path, PureWindowsPath

import pytest

from devposture.agent.cli import utf8_when_redirected
from devposture.agent.install_setup import Setup, SetupError, SetupRequest, cleanup
from devposture.agent.settings import config_folder
from devposture.agent.state import AGENT_FILE, platform_public_dir
from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import EnrollmentValue

AGENT = str(Path(sys.executable).parent / "devposture-agent")
PIN = "sha256:" + "ab" * 32
NOW = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)


def _value(expires: dt.datetime) -> str:
    """A real enrollment value, encoded as `token create --bundle` encodes it."""
    return EnrollmentValue(
        collectors=(CollectorAddress("collector.corp.example", 7443),), ca_fingerprint=PIN,
        token="dpt_0123456789abcdef_" + "s" * 43, expires=expires, uses=500,
    ).encode()  # fmt: skip


def _setup(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, "setup", "--config-folder", str(tmp_path / "etc"), "--state",
         str(tmp_path / "state"), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def value_file(tmp_path: Path) -> Path:
    path = tmp_path / "share" / "enroll.token"
    path.parent.mkdir()
    path.write_text(_value(dt.datetime.now(dt.UTC) + dt.timedelta(days=3)) + "\n")
    return path


def test_setup_writes_the_settings_and_places_the_enrollment_value_privately(
    tmp_path: Path, value_file: Path
) -> None:
    done = _setup(
        tmp_path, "--installer", "msi", "--collector=c1.corp.example:7443, 10.0.0.5:7443",
        f"--enrollment-file={value_file}", f"--ca-fingerprint={PIN.upper()[7:]}",
        "--https-proxy=http://proxy.corp.example:3128",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    etc = tmp_path / "etc"
    config = tomllib.loads((etc / "agent.toml").read_text())
    assert config == {
        "collector": {"addresses": ["c1.corp.example:7443", "10.0.0.5:7443"],
                      "ca_fingerprint": PIN},
        "network": {"https_proxy": "http://proxy.corp.example:3128"},
        "state": {"folder": str(tmp_path / "state")},
    }  # fmt: skip
    token = etc / "enroll.token"
    assert token.read_text().strip() == value_file.read_text().strip()
    assert _mode(token) == 0o600 and _mode(etc / "agent.toml") == 0o644
    assert _mode(etc) == 0o755 and _mode(tmp_path / "state") == 0o700
    # The value is never shown: not on the terminal, not in the installer's log.
    secret = value_file.read_text().strip()
    log = (etc / "logs" / "setup.log").read_text()
    assert secret not in done.stdout + done.stderr + log
    assert "setup (msi):" in log and "[collector] addresses" in log
    # The service reads what setup wrote, and would enroll from the file it placed.
    shown = subprocess.run(
        [AGENT, "config", "--config", str(etc / "agent.toml")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "c1.corp.example:7443" in shown and str(tmp_path / "state") in shown


def test_empty_values_are_not_given_and_a_second_run_keeps_what_it_did_not_set(
    tmp_path: Path,
) -> None:
    assert _setup(tmp_path, "--collector=a.example:1").returncode == 0
    config = tmp_path / "etc" / "agent.toml"
    config.write_text(config.read_text() + '\n[logging]\nlevel = "debug"  # IT, by hand\n')
    # An upgrade passes every MSI property, set or not.
    done = _setup(tmp_path, "--collector=", "--enrollment-file=", "--ca-fingerprint=",
                  "--https-proxy=")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    assert 'level = "debug"  # IT, by hand' in text
    assert tomllib.loads(text)["collector"] == {"addresses": ["a.example:1"]}
    assert not (tmp_path / "etc" / "enroll.token").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--collector=collector.corp.example"], "--collector='collector.corp.example': "),
        (["--ca-fingerprint=abc"], "--ca-fingerprint: "),
        (["--https-proxy=https://proxy:3128"], "--https-proxy: the proxy's scheme"),
        (["--enrollment-file=/nonexistent/enroll.token"], "does not exist: give the full path"),
    ],
)
def test_a_bad_value_is_refused_with_its_name_and_nothing_changes(
    tmp_path: Path, args: list[str], says: str
) -> None:
    done = _setup(tmp_path, *args)
    assert done.returncode == 1
    assert says in done.stderr, done.stderr
    assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()


def test_the_msi_names_its_properties(tmp_path: Path) -> None:
    done = _setup(tmp_path, "--installer", "msi", "--collector=no-port")
    assert done.returncode == 1
    assert "the COLLECTOR property (--collector)" in done.stderr
    # msiexec keeps no custom action's output: the reason is in setup.log.
    assert "failed: the COLLECTOR property" in (tmp_path / "etc/logs/setup.log").read_text()


def test_an_expired_a_damaged_and_a_foreign_enrollment_file_are_refused(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    cases = {
        "expired": (_value(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), "expired at 2026-01-01 08:00"),
        "damaged": (_value(NOW + dt.timedelta(days=3))[:-6] + "AAAAAA", "damaged"),
        "foreign": ("-----BEGIN CERTIFICATE-----", "neither an enrollment value"),
        "empty": ("\n", "is empty"),
    }
    for name, (content, says) in cases.items():
        (share / name).write_text(content)
        done = _setup(tmp_path, f"--enrollment-file={share / name}")
        assert done.returncode == 1 and says in done.stderr, (name, done.stderr)
    assert not (tmp_path / "etc").exists()


def test_a_bare_token_needs_the_collector_and_its_fingerprint(tmp_path: Path) -> None:
    bare = tmp_path / "bare.token"
    bare.write_text("dpt_0123456789abcdef_secret\n")
    refused = _setup(tmp_path, f"--enrollment-file={bare}")
    assert refused.returncode == 1 and "holds a bare token" in refused.stderr
    taken = _setup(tmp_path, f"--enrollment-file={bare}", "--collector=c.example:7443",
                   f"--ca-fingerprint={PIN}")  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    assert (tmp_path / "etc" / "enroll.token").read_text() == "dpt_0123456789abcdef_secret\n"


def test_an_enrolled_computer_gets_no_new_enrollment_file(tmp_path: Path, value_file: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / AGENT_FILE).write_text("{}")
    done = _setup(tmp_path, f"--enrollment-file={value_file}")
    assert done.returncode == 0, done.stderr
    assert "already enrolled" in done.stdout
    assert not (tmp_path / "etc" / "enroll.token").exists()
    # An upgrade months later, with the same properties: the value has expired, or the file
    # is gone from the share. Neither fails the upgrade of an enrolled computer.
    value_file.write_text(_value(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    assert _setup(tmp_path, f"--enrollment-file={value_file}").returncode == 0
    value_file.unlink()
    again = _setup(tmp_path, f"--enrollment-file={value_file}", "--collector=c.example:7443")
    assert again.returncode == 0, again.stderr
    assert "not needed, not read" in again.stdout


def test_a_hand_written_file_setup_cannot_edit_is_left_as_it_was(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    original = 'collector = { addresses = ["a.example:1"] }\n'
    (etc / "agent.toml").write_text(original)
    done = _setup(tmp_path, "--collector=b.example:2")
    assert done.returncode == 1 and "cannot be edited safely" in done.stderr
    assert (etc / "agent.toml").read_text() == original


def test_cleanup_keeps_the_state_unless_purged(tmp_path: Path, value_file: Path) -> None:
    assert _setup(tmp_path, f"--enrollment-file={value_file}").returncode == 0
    etc, state = tmp_path / "etc", tmp_path / "state"
    (state / AGENT_FILE).write_text("{}")
    for purge in ("", "0"):
        kept = subprocess.run([AGENT, "cleanup", "--config-folder", str(etc), f"--purge={purge}"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert kept.returncode == 0 and "kept" in kept.stdout
        assert (state / AGENT_FILE).exists() and (etc / "agent.toml").exists()
    purged = subprocess.run([AGENT, "cleanup", "--config-folder", str(etc), "--purge=1"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert purged.returncode == 0, purged.stderr
    assert not etc.exists() and not state.exists()


def test_purge_deletes_only_the_agents_files_from_a_state_folder_it_shares(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "srv"
    (elsewhere / "outbox").mkdir(parents=True)
    (elsewhere / "outbox" / "1.report").write_bytes(b"report")
    for name in (AGENT_FILE, "device.key", "device.crt", ".renewal.json.tmp",
                 ".agent-config.pb.0123456789abcdef.tmp"):  # fmt: skip
        (elsewhere / name).write_text("ours")
    (elsewhere / "payroll.xlsx").write_text("not ours")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "agent.toml").write_text(f'[state]\nfolder = "{elsewhere}"\n')
    said = cleanup(True, tmp_path / "etc", "linux", state_default=tmp_path / "none")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["payroll.xlsx"]
    assert any("left the folder" in line and str(elsewhere) in line for line in said)
    assert not (tmp_path / "etc").exists()
    # Once nothing else is in it, the folder goes too.
    (elsewhere / "payroll.xlsx").unlink()
    (elsewhere / AGENT_FILE).write_text("ours")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "agent.toml").write_text(f'[state]\nfolder = "{elsewhere}"\n')
    assert f"deleted {elsewhere}" in cleanup(True, tmp_path / "etc", "linux")
    assert not elsewhere.exists()


def test_an_msi_purge_leaves_nothing_behind_and_a_wrong_purge_value_deletes_nothing(
    tmp_path: Path, value_file: Path
) -> None:
    assert _setup(tmp_path, "--installer", "msi", f"--enrollment-file={value_file}").returncode == 0
    etc = tmp_path / "etc"
    assert (etc / "logs" / "setup.log").exists()

    def cleanup_(purge: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENT, "cleanup", "--installer", "msi", "--config-folder", str(etc),
             f"--purge={purge}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    wrong = cleanup_("yes")
    assert wrong.returncode == 0 and "--purge='yes' is not 1: nothing deleted" in wrong.stdout
    assert "uninstall with PURGE=1" in wrong.stdout
    assert "is not 1" in (etc / "logs" / "setup.log").read_text()
    assert (etc / "enroll.token").exists()
    assert cleanup_("1").returncode == 0
    assert not etc.exists()  # no setup.log written back after the purge


# -- Windows: the same code, with icacls and sc.exe recorded -----------------------------------


def test_on_windows_the_folder_is_made_private_and_the_service_restarts_on_failure(
    tmp_path: Path, value_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SystemRoot", r"C:\Windows")
    ran: list[list[str]] = []
    folder = tmp_path / "ProgramData" / "devposture"
    said = Setup(
        SetupRequest(collectors="c.example:7443", enrollment_file=str(value_file),
                     installer="msi"),
        folder, platform="win32", runner=lambda argv: ran.append(list(argv)),
        state_default=folder / "state", public_default=folder / "status",
    ).run()  # fmt: skip
    icacls, sc = r"C:\Windows\System32\icacls.exe", r"C:\Windows\System32\sc.exe"
    shown = str(PureWindowsPath(folder))  # as Windows would print this folder
    public = str(PureWindowsPath(folder / "status"))
    assert ran == [
        [icacls, shown, "/setowner", "*S-1-5-32-544"],
        [icacls, shown, "/inheritance:r", "/grant:r", "*S-1-5-18:(OI)(CI)F",
         "*S-1-5-32-544:(OI)(CI)F"],
        # What `status` shows, inside the private folder: its own ACL, after the folder's
        # (whose inherited entries it drops), readable (RX) by the Users group.
        [icacls, public, "/setowner", "*S-1-5-32-544"],
        [icacls, public, "/inheritance:r", "/grant:r", "*S-1-5-18:(OI)(CI)F",
         "*S-1-5-32-544:(OI)(CI)F", "*S-1-5-32-545:(OI)(CI)RX"],
        [sc, "failure", "devposture-agent", "reset=", "86400", "actions=",
         "restart/60000/restart/60000/restart/60000"],
        [sc, "failureflag", "devposture-agent", "1"],
    ]  # fmt: skip
    # The folder is secured before anything secret is written into it.
    assert (folder / "enroll.token").exists() and (folder / "state").is_dir()
    assert any("SYSTEM and Administrators only" in line for line in said)
    assert any("every user may read it" in line for line in said)
    # The service publishes there by default: the folder setup opens to the Users group.
    assert platform_public_dir("win32").parent == config_folder("win32")
    assert platform_public_dir("win32").name == "status"


def test_on_windows_a_failing_tool_fails_the_install(tmp_path: Path) -> None:
    def refuse(argv: object) -> None:
        raise SetupError("icacls /setowner failed (exit 5): Access is denied.")

    with pytest.raises(SetupError, match="Access is denied"):
        Setup(SetupRequest(collectors="c.example:7443"), tmp_path / "dp", platform="win32",
              runner=refuse).run()  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the modes are checked as root sets them")
def test_the_folder_of_an_existing_install_is_tightened(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o777)
    etc.chmod(0o777)
    assert _setup(tmp_path, "--collector=a.example:1").returncode == 0
    assert _mode(etc) == 0o755


def test_on_windows_redirected_output_is_utf8() -> None:
    """`collect --json > report.json` on an English Windows: the ANSI code page (cp1252) has
    no Chinese; the agent writes UTF-8 to anything that is not a console."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252")
    utf8_when_redirected(stream, "win32")
    stream.write('{"name": "微信"}')
    stream.flush()
    assert raw.getvalue().decode("utf-8") == '{"name": "微信"}'
    elsewhere = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    utf8_when_redirected(elsewhere, "linux")
    assert elsewhere.encoding == "cp1252"  # only Windows is changed
