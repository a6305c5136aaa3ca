"""installers/macos/uninstall.sh, run for real under macOS's shells (dash and bash in POSIX
mode) on a Mac's installed layout made in a folder, with the agent's own `cleanup` (this
checkout's program) deciding what --purge deletes. launchctl and pkgutil cannot run here:
fakes first on PATH record how they were called."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO

SCRIPT = REPO / "installers" / "macos" / "uninstall.sh"
AGENT = Path(sys.executable).parent / "devposture-agent"
LABEL = "com.devposture.agent"
SHELLS = [s for s in ("dash", "bash --posix") if shutil.which(s.split()[0])]
# launchctl print succeeds while the fake daemon is "loaded" (a marker file exists).
FAKE_LAUNCHCTL = """#!/bin/sh
echo "launchctl $*" >> "$FAKE_LOG"
case "$1" in
    print) [ -e "$FAKE_LOADED" ] ;;
    bootout) rm -f "$FAKE_LOADED" ;;
esac
"""
FAKE_PKGUTIL = '#!/bin/sh\necho "pkgutil $*" >> "$FAKE_LOG"\n'


@pytest.fixture
def mac(tmp_path: Path) -> Path:
    """A Mac's disk with the agent installed, enrolled, configured and logging."""
    root = tmp_path / "disk"
    lib = root / "opt/devposture-agent/lib/devposture-agent"
    lib.mkdir(parents=True)
    (lib / "devposture-agent").symlink_to(AGENT)  # the program, as the payload lays it out
    (root / "opt/devposture-agent/bin").mkdir()
    (root / "opt/devposture-agent/bin/devposture-agent").symlink_to(
        "../lib/devposture-agent/devposture-agent"
    )
    (root / "Library/LaunchDaemons").mkdir(parents=True)
    (root / f"Library/LaunchDaemons/{LABEL}.plist").write_text("<plist/>")
    config = root / "Library/Application Support/devposture"
    (config / "state").mkdir(parents=True)
    (config / "agent.toml").write_text('[collector]\naddresses = ["c.example:7443"]\n')
    (config / "state/agent.json").write_text("{}")
    (config / "state/device.key").write_text("key")
    (root / "Library/Logs/devposture").mkdir(parents=True)
    (root / "Library/Logs/devposture/agent.log").write_text("started\n")
    return root


def _uninstall(shell: str, mac: Path, *args: str, loaded: bool = True) -> (
    tuple[subprocess.CompletedProcess[str], list[str]]
):  # fmt: skip
    fakes = mac.parent / "fakebin"
    fakes.mkdir(exist_ok=True)
    for name, text in {"launchctl": FAKE_LAUNCHCTL, "pkgutil": FAKE_PKGUTIL}.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    log, marker = mac.parent / "calls.log", mac.parent / "loaded"
    log.unlink(missing_ok=True)
    if loaded:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)
    done = subprocess.run(
        [*shell.split(), str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
        check=False,
        env={"PATH": f"{fakes}:/usr/bin:/bin", "FAKE_LOG": str(log), "FAKE_LOADED": str(marker),
             "DEVPOSTURE_PKG_TEST_ROOT": str(mac)},
    )  # fmt: skip
    return done, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("shell", SHELLS)
def test_uninstall_removes_the_program_and_daemon_and_keeps_the_state(
    shell: str, mac: Path
) -> None:
    done, calls = _uninstall(shell, mac)
    assert done.returncode == 0, done.stderr
    assert calls == [
        f"launchctl print system/{LABEL}",
        f"launchctl bootout system/{LABEL}",
        f"pkgutil --volume {mac} --forget com.devposture.agent.pkg",
    ]
    assert not (mac / "opt/devposture-agent").exists()
    assert not (mac / f"Library/LaunchDaemons/{LABEL}.plist").exists()
    config = mac / "Library/Application Support/devposture"
    assert (config / "state/device.key").exists() and (config / "agent.toml").exists()
    assert (mac / "Library/Logs/devposture/agent.log").exists()
    assert "kept" in done.stdout and "uninstall.sh --purge" in done.stdout  # said by cleanup


@pytest.mark.parametrize("shell", SHELLS)
def test_purge_deletes_the_configuration_state_and_logs(shell: str, mac: Path) -> None:
    done, _ = _uninstall(shell, mac, "--purge", loaded=False)
    assert done.returncode == 0, done.stderr
    assert not (mac / "Library/Application Support/devposture").exists()
    assert not (mac / "Library/Logs/devposture").exists()
    assert not (mac / "opt").exists() or not any((mac / "opt").iterdir())
    assert (mac / "Library/LaunchDaemons").is_dir()  # the system's folder stays


def test_a_daemon_not_loaded_is_not_booted_out_and_a_wrong_option_is_refused(mac: Path) -> None:
    wrong, _ = _uninstall("sh", mac, "--purg")
    assert wrong.returncode == 2 and "usage: sudo sh" in wrong.stderr
    assert (mac / "opt/devposture-agent").exists()  # refused before doing anything
    done, calls = _uninstall("sh", mac, loaded=False)
    assert done.returncode == 0 and f"launchctl bootout system/{LABEL}" not in calls


def test_as_a_jamf_script_its_own_arguments_are_ignored(mac: Path) -> None:
    """Jamf passes the volume, the computer's name and the user, then the policy's
    parameters (here parameter 4: --purge)."""
    done, _ = _uninstall("sh", mac, "/", "MacBook-Li", "li", "--purge")
    assert done.returncode == 0, done.stderr
    assert not (mac / "Library/Application Support/devposture").exists()
