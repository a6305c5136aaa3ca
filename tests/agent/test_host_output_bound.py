"""A tool's output is read up to a bound per stream, through the real LiveHost and real
processes: one that prints without end is stopped when it passes the bound, the agent's memory
stays bounded, and its fact reads UNKNOWN with the reason, never a partial parse.

Each test runs both ways of reading: POSIX's (one thread waiting on both pipes) and Windows'
(a thread per pipe, as Windows cannot wait on pipes); the Windows one runs here on real
processes, as it is plain Python."""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from devposture.agent.host import (
    CommandTimeoutError,
    LiveHost,
    OutputTooLargeError,
    live,
)
from devposture.agent.host.bundle import BundleHost, RecordingHost
from devposture.agent.host.output_bound import (
    STDERR_MOST,
    STDOUT_MOST,
    read_selecting,
    read_threaded,
    shown_size,
)
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.commands import is_declared
from devposture.agent.probes.linux import updates
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.policy.checks import CheckParameters, State, check_os_updates
from devposture.policy.phrases import is_phrase
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb

posix_only = pytest.mark.skipif(os.name != "posix", reason="uses POSIX tools (yes, sh, head)")
BEIJING = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(params=["posix", "windows"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """LiveHost reading as it does on POSIX, then as it does on Windows."""
    chosen = {"posix": read_selecting, "windows": read_threaded}[request.param]
    if request.param == "posix" and os.name != "posix":
        pytest.skip("POSIX's way of reading pipes")
    monkeypatch.setattr(live, "read_output", chosen)
    yield request.param


def _running(marker: str) -> list[psutil.Process]:
    """Processes whose command line holds `marker` (the tools a test started, and only them)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info.get("cmdline") or ()):
            found.append(proc)
    return found


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _reset_peak() -> bool:
    """Start Linux's count of this process's peak RSS (VmHWM) again; False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def _peak() -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmHWM in /proc/self/status")


@posix_only
def test_a_tool_that_prints_without_end_is_stopped_at_the_bound(reader: str) -> None:
    """`yes` prints for ever: without a bound the agent kept all of it until the timeout (ten
    minutes here): gigabytes, 1.5 GB within 3 s on the machine this was written on. The error
    comes when the bound is passed, long before."""
    marker = f"devposture-endless-{uuid.uuid4()}"
    before = _rss()
    peak_known = _reset_peak()
    with pytest.raises(OutputTooLargeError) as info:
        LiveHost().run(["yes", marker], timeout=600)
    peak = _peak() - before if peak_known else None
    grown = _rss() - before
    assert info.value.message == (
        f"yes printed more than {shown_size(STDOUT_MOST)}: far more than any real output of"
        " it, so it was stopped and what it printed was not read"
    )
    assert is_phrase(info.value.message)
    assert info.value.code == pb.PROBE_ERROR_CODE_COMMAND_FAILED
    # Bounded by the bound, not by what the tool printed (gigabytes without it): while reading,
    # the chunks read and their join may be held at once, with what Python and the C allocator
    # keep meanwhile (a clean-clone CI run with three test processes measured a peak of 14 MiB
    # over an 8 MiB bound). Twice the bound and a margin still tells a bound from none.
    most = 2 * STDOUT_MOST + (8 << 20)
    if peak is not None:
        assert peak < most, peak
    assert grown < most, grown
    assert _running(marker) == []


@posix_only
def test_the_error_stream_has_its_own_bound(reader: str) -> None:
    marker = f"devposture-endless-{uuid.uuid4()}"
    with pytest.raises(OutputTooLargeError) as info:
        # exec: the tool itself prints, so that its end is awaited (a helper it forks is killed
        # with its group, but not awaited)
        LiveHost().run(["sh", "-c", 'exec yes "$0" >&2', marker], timeout=600)
    assert info.value.message.startswith(f"sh printed more than {shown_size(STDERR_MOST)}: ")
    assert _running(marker) == []


@posix_only
def test_output_up_to_the_bound_is_read_whole_and_one_byte_more_is_not(reader: str) -> None:
    host = LiveHost()
    whole = host.run(["head", "-c", str(STDOUT_MOST), "/dev/zero"], timeout=600)
    assert whole.stdout == bytes(STDOUT_MOST) and whole.returncode == 0
    with pytest.raises(OutputTooLargeError):
        host.run(["head", "-c", str(STDOUT_MOST + 1), "/dev/zero"], timeout=600)
    errors = host.run(["sh", "-c", f"head -c {STDERR_MOST} /dev/zero >&2"], timeout=600)
    assert errors.stderr == bytes(STDERR_MOST) and errors.stdout == b""


def test_a_tool_that_prints_a_little_and_hangs_still_times_out(reader: str) -> None:
    marker = f"devposture-hang-{uuid.uuid4()}"
    code = "import sys, time; print(sys.argv[1], flush=True); time.sleep(60)"
    with pytest.raises(CommandTimeoutError, match=r" did not finish within 0\.5 s$"):
        LiveHost().run([sys.executable, "-c", code, marker], timeout=0.5)
    assert _running(marker) == []


@posix_only
def test_a_tool_that_prints_both_streams_at_once_is_read_whole(reader: str) -> None:
    """Both pipes are read together: a tool that fills its error pipe before it finishes its
    output (more than a pipe holds, 64 KiB on Linux) is not left waiting on a full pipe."""
    script = "head -c 300000 /dev/zero >&2; head -c 300000 /dev/zero; echo done >&2"
    result = LiveHost().run(["sh", "-c", script], timeout=600)
    assert len(result.stdout) == 300_000
    assert result.stderr == bytes(300_000) + b"done\n"


def _endless_tool(folder: Path, name: str, line: str) -> Callable[[], list[psutil.Process]]:
    """A tool named `name` first on the PATH that prints `line` for ever; returns a finder of
    its processes (`line` must be unique to the test)."""
    tool = folder / name
    tool.write_text(f"#!/bin/sh\nexec yes '{line}'\n", encoding="utf-8")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return lambda: _running(line)


@posix_only
def test_a_fact_whose_tool_prints_without_end_reads_unknown_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """A broken apt-get printing the same pending update for ever: what it printed is never
    parsed (it would have counted millions of security updates), the count stays unknown and
    the clause reads UNKNOWN, saying why."""
    package = f"devposture-{uuid.uuid4()}"
    line = f"Inst {package} [1.0-1] (1.0-1+deb12u1 Debian-Security:12/stable-security [amd64])"
    running = _endless_tool(tmp_path, "apt-get", line)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    host = LiveHost(declared=is_declared)
    ctx = ProbeContext(host, ProbeConfig(), pb.PostureReport())
    outcome = run_probe(pb.FACT_OS_UPDATES, updates.probe, ctx)
    assert running() == []
    said = [e for e in outcome.errors if e.message.startswith("apt-get printed more than")]
    assert [(e.source, e.code) for e in said] == [("apt-get", pb.PROBE_ERROR_CODE_COMMAND_FAILED)]
    assert is_phrase(said[0].message)
    assert isinstance(outcome.fact, pb.OsUpdatesFact)
    assert not outcome.fact.HasField("pending_security")
    report = pb.PostureReport(os_updates=outcome.fact, errors=outcome.errors)
    verdict = check_os_updates(report, dt.datetime.now(dt.UTC), CheckParameters())
    assert verdict.state == State.UNKNOWN
    assert f"apt-get printed more than {shown_size(STDOUT_MOST)}" in render(
        verdict.reason, "en", BEIJING
    )


@posix_only
def test_a_bundle_replays_the_output_that_was_too_large(tmp_path: Path) -> None:
    """IT replays a misbehaving device's bundle: the fact reads as it did there."""
    recorder = RecordingHost(LiveHost())
    argv = ["yes", f"devposture-endless-{uuid.uuid4()}"]
    with pytest.raises(OutputTooLargeError) as live_error:
        recorder.run(argv, timeout=600)
    recorder.save(tmp_path / "bundle.json", "test", ProbeConfig())
    with pytest.raises(OutputTooLargeError) as replayed:
        BundleHost.load(tmp_path / "bundle.json").run(argv, timeout=600)
    assert replayed.value.message == live_error.value.message


def test_the_bounds_hold_the_largest_real_outputs_recorded_with_a_wide_margin() -> None:
    """Every recorded output of a tool the probes run fits many times over (the largest, a
    firewalld ruleset in nft's JSON, is 84 KB; the largest error output, freshclam's, 4.5 KB);
    see output_bound's docstring for the real machines' worst cases the bounds were chosen
    against."""
    files = [p for p in (Path(__file__).resolve().parents[1] / "fixtures").rglob("*")
             if p.is_file()]  # fmt: skip
    errors = [p for p in files if p.suffix == ".err" or "stderr" in p.name]
    assert max(p.stat().st_size for p in files) * 50 < STDOUT_MOST
    assert max(p.stat().st_size for p in errors) * 50 < STDERR_MOST
