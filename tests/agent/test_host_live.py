"""LiveHost against this machine: commands, limits, files, processes, interfaces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devposture.agent.host import (
    CommandFailedError,
    CommandNotFoundError,
    CommandTimeoutError,
    HostError,
    HostPermissionError,
    LiveHost,
    SourceMissingError,
    display_path,
)
from devposture.v1 import devposture_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]

posix_only = pytest.mark.skipif(os.name != "posix", reason="uses POSIX tools (sh, sleep, false)")


def test_missing_command_is_not_found() -> None:
    with pytest.raises(CommandNotFoundError) as info:
        LiveHost().run(["devposture-no-such-tool-xyz"], timeout=5)
    assert info.value.code == pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND


@posix_only
def test_command_beyond_timeout_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError) as info:
        LiveHost().run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - start < 5
    assert info.value.code == pb.PROBE_ERROR_CODE_TIMEOUT


@posix_only
def test_child_holding_the_pipe_is_killed_too() -> None:
    # A helper forked by the tool keeps stdout open; the process group is killed with it.
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        LiveHost().run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert time.monotonic() - start < 5


@posix_only
def test_a_helper_that_leaves_the_group_does_not_hold_the_agent() -> None:
    # A helper started in a session of its own (setsid) is not killed with the tool's group
    # and keeps the pipes open: the agent waited for it (60 s) instead of the tool's deadline.
    start = time.monotonic()
    try:
        with pytest.raises(CommandTimeoutError):
            LiveHost().run(["sh", "-c", "setsid sleep 29.25 & sleep 30"], timeout=0.5)
        assert time.monotonic() - start < 20  # the helper's 29 s are not waited for
    finally:
        subprocess.run(["pkill", "-f", "sleep 29.25"], check=False)


@posix_only
def test_non_zero_exit_is_failed_and_keeps_stderr() -> None:
    with pytest.raises(CommandFailedError) as info:
        LiveHost().run(["sh", "-c", "echo boom >&2; exit 3"], timeout=5)
    assert info.value.returncode == 3
    assert info.value.stderr.strip() == b"boom"
    assert info.value.code == pb.PROBE_ERROR_CODE_COMMAND_FAILED


@posix_only
def test_accepted_exit_codes_and_c_locale() -> None:
    result = LiveHost().run(["sh", "-c", 'echo "$LC_ALL"; exit 100'], timeout=5, ok_codes={0, 100})
    assert result.returncode == 100
    assert result.stdout_text().strip() == "C"


@posix_only
def test_python_tools_are_not_translated_by_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ufw and firewall-cmd are Python: gettext.find reads LANGUAGE before LC_ALL, and a
    # Chinese Ubuntu gives services LANGUAGE=zh_CN:zh (ufw then printed "状态：不活动").
    (tmp_path / "zh_CN" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "zh_CN" / "LC_MESSAGES" / "ufw.mo").write_bytes(b"")
    monkeypatch.setenv("LANGUAGE", "zh_CN:zh")
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    code = f"import gettext; print(gettext.find('ufw', {str(tmp_path)!r}))"
    result = LiveHost().run([sys.executable, "-c", code], timeout=30)
    assert result.stdout_text().strip() == "None"


def test_read_bytes_honours_the_limit(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"x" * 100_000)
    assert LiveHost().read_bytes(str(target), 64) == b"x" * 64


def test_missing_file_is_no_source(tmp_path: Path) -> None:
    host = LiveHost()
    with pytest.raises(SourceMissingError):
        host.read_bytes(str(tmp_path / "absent"), 10)
    with pytest.raises(SourceMissingError):
        host.list_dir(str(tmp_path / "absent"))
    assert not host.exists(str(tmp_path / "absent"))


_READ_DENIED = """
import sys
from devposture.agent.host import HostPermissionError, LiveHost
try:
    LiveHost().read_bytes(sys.argv[1], 10)
except HostPermissionError as exc:
    print("permission-denied:", exc)
"""


@posix_only
def test_unreadable_file_is_permission_denied(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"x")
    target.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(HostPermissionError):
            LiveHost().read_bytes(str(target), 10)
        return
    # Root reads everything: drop the capabilities that let it ignore file modes, so the
    # kernel refuses the read as it would for an agent running without privileges.
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's file-access capabilities")
    done = subprocess.run(
        [
            setpriv,
            "--bounding-set=-dac_override,-dac_read_search",
            sys.executable,
            "-c",
            _READ_DENIED,
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(ROOT),
    )
    assert done.stdout.startswith("permission-denied:"), done.stdout + done.stderr


def test_walk_is_bounded_and_does_not_follow_links(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"d{i % 3}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 3}" / f"f{i}").write_bytes(b"ab")
    (tmp_path / "loop").symlink_to(tmp_path)
    host = LiveHost()
    full = host.walk_files(str(tmp_path), 1000)
    assert len(full.files) == 30 and not full.truncated
    assert sum(f.size for f in full.files) == 60
    capped = host.walk_files(str(tmp_path), 10)
    assert len(capped.files) == 10 and capped.truncated


def test_stat_and_list_dir(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("hello")
    (tmp_path / "a").mkdir()
    host = LiveHost()
    assert host.list_dir(str(tmp_path)) == ["a", "b"]
    st = host.stat(str(tmp_path / "b"))
    assert st.size == 5 and not st.is_dir and st.mtime > 0
    assert host.stat(str(tmp_path / "a")).is_dir


@posix_only
def test_real_path_follows_every_link_on_the_way(tmp_path: Path) -> None:
    """A link above the folder and a link to the folder both lead to where the files are."""
    (tmp_path / "usb" / "backups" / "2026-11").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "Documents").symlink_to(tmp_path / "usb")
    (tmp_path / "usb" / "latest").symlink_to("backups/2026-11")
    host = LiveHost()
    real = str(tmp_path.resolve() / "usb" / "backups" / "2026-11")
    assert host.real_path(str(tmp_path / "home" / "Documents" / "latest")) == real
    assert host.real_path(str(tmp_path / "home" / "Documents" / "backups" / "..")) == str(
        tmp_path.resolve() / "usb"
    )
    assert host.real_path(str(tmp_path / "usb")) == str(tmp_path.resolve() / "usb")


@posix_only
def test_a_link_that_cannot_be_resolved_says_why(tmp_path: Path) -> None:
    """Never a path that only looks resolved: a target that is gone (a USB disk unplugged) is
    missing, a loop is a loop."""
    (tmp_path / "gone").symlink_to(tmp_path / "unplugged" / "backups")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    host = LiveHost()
    with pytest.raises(SourceMissingError, match="does not exist"):
        host.real_path(str(tmp_path / "gone"))
    with pytest.raises(HostError, match=r"/a/backups is a loop of symbolic links$"):
        host.real_path(str(tmp_path / "a" / "backups"))


_RESOLVE_DENIED = """
import sys
from devposture.agent.host import HostPermissionError, LiveHost
try:
    print("resolved:", LiveHost().real_path(sys.argv[1]))
except HostPermissionError as exc:
    print("permission-denied:", exc)
"""


@posix_only
def test_a_link_through_a_folder_the_agent_may_not_read_is_permission_denied(
    tmp_path: Path,
) -> None:
    (tmp_path / "locked" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "locked" / "inner")
    (tmp_path / "locked").chmod(0)
    try:
        argv = [sys.executable, "-c", _RESOLVE_DENIED, str(tmp_path / "link")]
        if os.geteuid() == 0:  # root ignores file modes unless these capabilities are dropped
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("setpriv (util-linux) is needed to drop root's file-access rights")
            argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(ROOT))
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert done.stdout == f"permission-denied: permission denied resolving {tmp_path}/link\n", (
        done.stdout + done.stderr
    )


def test_processes_interfaces_identity_and_clock() -> None:
    host = LiveHost()
    assert any(p.pid == os.getpid() for p in host.processes())
    names = {i.name for i in host.net_interfaces()}
    assert names  # at least a loopback
    info = host.host_info()
    assert info.hostname and info.machine
    offset = host.now().utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    if sys.platform.startswith("linux"):
        assert host.os_family == pb.OS_FAMILY_LINUX
        assert "lo" in names
    assert all(Path(h).is_dir() for h in host.home_dirs())


def test_display_path_hides_the_home() -> None:
    homes = ["/home/alice", "/home/al", "C:\\Users\\Bob"]
    assert display_path("/home/alice/Documents/WeChat Files", homes) == "~/Documents/WeChat Files"
    assert display_path("/home/al", homes) == "~"
    assert display_path("/home/alicex/x", homes) == "/home/alicex/x"
    assert display_path("c:\\users\\bob\\Documents\\WXWork", homes) == "~/Documents/WXWork"
    assert display_path("/srv/backups", homes) == "/srv/backups"
