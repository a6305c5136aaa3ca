"""The enrollment value end to end, as IT rolls the agent out: a value from the real
`token create --bundle`, written to a 0600 enrollment file named in agent.toml, and
`devposture-agent run` (a real process, as the service starts it) enrolling with it, deleting
it, and reporting to a real collector. Also: the first address dead and the second alive; the
collector unreachable; a file others can read, refused until fixed; a damaged value logged once
and replaced; an HTTPS proxy between them; and the secret in no argv and no log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devposture.net.enrollment_value import parse_enrollment_value
from tests.connect_proxy import connect_proxy
from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, open_store, run
from tests.ports import free_ports
from tests.waiting import wait_until

WAIT = 90.0  # generous: every wait below ends on an event, this only bounds a failure


def _bundle(c: CollectorProcess, *addresses: str, uses: int = 1) -> str:
    done = run(COLLECTOR, "token", "create", "--bundle", "--uses", str(uses), "--data",
               str(c.data), *(x for a in addresses for x in ("--enroll-address", a)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    """Written as an installer would: a private temporary file, moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    temporary.chmod(mode)
    temporary.replace(path)
    return path


def _rolled_out(
    tmp_path: Path, text: str, mode: int = 0o600, extra: str = ""
) -> tuple[Path, Path, Path]:
    """What IT's rollout leaves on a computer: agent.toml naming the enrollment file and the
    state folder, and `text` in that file. (agent.toml, the file, the state folder.)"""
    enroll_file, state = tmp_path / "etc" / "enroll.token", tmp_path / "state"
    config = tmp_path / "etc" / "agent.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[enrollment]\nfile = "{enroll_file}"\n\n[state]\nfolder = "{state}"\n{extra}'
    )
    _secret_file(enroll_file, text, mode)
    return config, enroll_file, state


def _reports(c: CollectorProcess) -> list[str]:
    store = open_store(c.data)
    try:
        return store.reports.report_ids()
    finally:
        store.close()


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1) -> None:
        def seen() -> bool:
            assert self.process.poll() is None, f"the agent exited:\n{self.output()}"
            return self.output().count(text) >= count

        wait_until(seen, f"{text!r} x{count} in the agent's log", WAIT, 0.1)

    def argv_seen_by_ps(self) -> str:
        done = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(self.process.pid)],
                              capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
        assert "devposture-agent" in done.stdout and " run" in done.stdout
        return done.stdout


@contextlib.contextmanager
def agent_run(tmp_path: Path, config: Path, *extra: str) -> Iterator[Agent]:
    """`devposture-agent run` with `config`, looking at the enrollment file often (a test
    cannot wait a minute), until the block ends (SIGTERM; it must then exit 0)."""
    log = tmp_path / "agent.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [AGENT, "run", "--config", str(config), "--interval", "3600",
             "--enrollment-check", "0.2", *extra],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        agent = Agent(process, log)
        try:
            yield agent
        finally:
            process.send_signal(signal.SIGTERM)
            code: int | None
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                # Its log says where it was: a stop it did not act on is the defect to find.
                code = None
            finally:
                if process.poll() is None:
                    process.kill()
    assert code == 0, f"exit {code} after SIGTERM (None: still running 60 s on):\n" + (
        agent.output()[-4000:]
    )


def _enrolled(state: Path) -> dict[str, object]:
    agent_json = state / "agent.json"
    return dict(json.loads(agent_json.read_text())) if agent_json.exists() else {}


def _until_enrolled(state: Path, enroll_file: Path) -> None:
    """Until the agent has enrolled, and then deleted the enrollment file."""
    wait_until(lambda: bool(_enrolled(state)), "enrolled", WAIT, 0.1)
    wait_until(lambda: not enroll_file.exists(), "the enrollment file deleted", WAIT, 0.1)


def test_run_enrolls_with_the_value_deletes_the_file_and_reports(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    value = _bundle(c, f"127.0.0.1:{c.enroll_port}")
    token = parse_enrollment_value(value).token
    config, enroll_file, state = _rolled_out(tmp_path, value)
    with agent_run(tmp_path, config) as agent:
        assert token not in agent.argv_seen_by_ps() and value not in agent.argv_seen_by_ps()
        wait_until(lambda: len(_reports(c)) >= 1, "a report stored by the collector", WAIT, 0.1)
        assert not enroll_file.exists(), "the enrollment file outlived its enrollment"
        device = _enrolled(state)["device_id"]
        agent.wait_for(f"enrolled as device {device}")
        # The same process (systemd sees no restart), started afresh: the enrollment code and
        # its Rust library are no longer mapped (the service stays under its memory target).
        agent.wait_for("starting the service afresh, without the enrollment code")
        maps = Path(f"/proc/{agent.process.pid}/maps").read_text()
        assert "devposture" in maps or "python" in maps  # the right process's map
        assert "cryptography" not in maps, "the enrollment code is still loaded"
    fleet = run(COLLECTOR, "device", "list", "--data", str(c.data), "--format", "json")
    assert [d["device"] for d in json.loads(fleet.stdout)] == [device]
    output = agent.output()
    assert token not in output and token.split("_", 2)[2] not in output and value not in output
    assert "devposture agent stopped" in output


def test_a_dead_first_address_is_passed_over(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    (dead,) = free_ports(1)  # nothing listens there
    value = _bundle(c, f"127.0.0.1:{dead}", f"127.0.0.1:{c.enroll_port}")
    config, enroll_file, state = _rolled_out(tmp_path, value)
    with agent_run(tmp_path, config):
        _until_enrolled(state, enroll_file)
    assert _enrolled(state)["enroll_port"] == c.enroll_port


def test_while_the_collector_cannot_be_reached_the_service_waits_and_keeps_the_file(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    (dead,) = free_ports(1)
    # A value made for the right collector at an address where it does not answer (yet).
    value = _bundle(c, f"127.0.0.1:{dead}")
    config, enroll_file, state = _rolled_out(tmp_path, value)
    with agent_run(tmp_path, config) as agent:
        agent.wait_for("cannot enroll yet", count=2)  # tried, backed off, tried again
        assert enroll_file.exists() and not _enrolled(state)
    assert "trying again in" in agent.output()


def test_a_file_others_can_read_is_refused_until_it_is_private(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    value = _bundle(c, f"127.0.0.1:{c.enroll_port}")
    config, enroll_file, state = _rolled_out(tmp_path, value, mode=0o644)
    with agent_run(tmp_path, config) as agent:
        agent.wait_for("can be read or changed by other users (mode 0644)")
        agent.wait_for(f"chmod 600 {enroll_file}")
        assert enroll_file.exists() and not _enrolled(state)
        enroll_file.chmod(0o600)
        _until_enrolled(state, enroll_file)
    assert agent.output().count("can be read or changed by other users") == 1


def test_a_damaged_value_is_logged_once_and_a_new_one_is_used(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    value = _bundle(c, f"127.0.0.1:{c.enroll_port}")
    config, enroll_file, state = _rolled_out(tmp_path, value[:-15])  # cut short in a copy
    with agent_run(tmp_path, config, "--log-level", "debug") as agent:
        agent.wait_for("the enrollment value is damaged")
        # Looked at the file again and again, and said nothing more about it.
        agent.wait_for("has not changed since it was refused", count=3)
        assert agent.output().count("the enrollment value is damaged") == 1
        assert not _enrolled(state)
        _secret_file(enroll_file, value)
        _until_enrolled(state, enroll_file)
    token = parse_enrollment_value(value).token
    assert token.split("_", 2)[2] not in agent.output()


def test_enrollment_and_reports_go_through_an_https_proxy(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    value = _bundle(c, f"127.0.0.1:{c.enroll_port}")
    with connect_proxy() as proxy:
        config, _, state = _rolled_out(
            tmp_path, value, extra=f'\n[network]\nhttps_proxy = "{proxy.url}"\n'
        )
        with agent_run(tmp_path, config):
            wait_until(lambda: len(_reports(c)) >= 1, "a report stored by the collector", WAIT, 0.1)
            tunnels = proxy.opened()
    enroll_target, report_target = f"127.0.0.1:{c.enroll_port}", f"127.0.0.1:{c.report_port}"
    # The CA pinning and the Enroll call, then the report channel: all through the proxy.
    assert tunnels.count(enroll_target) == 2 and report_target in tunnels, tunnels
    assert set(tunnels) == {enroll_target, report_target}
    assert _enrolled(state)["report_port"] == c.report_port


def test_enroll_takes_a_value_in_place_of_the_token_and_its_collector(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    value = _bundle(c, f"127.0.0.1:{c.enroll_port}")
    given = _secret_file(tmp_path / "from-it.txt", value)
    done = run(AGENT, "enroll", "--token-file", str(given), "--state", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr
    assert "Enrolled: this computer is device" in done.stdout
    assert given.exists(), "a file named with --token-file is the person's: it stays"
    # The value typed where its file goes: refused, not echoed, and not spent.
    typed = run(AGENT, "enroll", "--token-file", value, "--state", str(tmp_path / "b"))
    assert typed.returncode == 1 and "not the token" in typed.stderr
    assert value[5:40] not in typed.stderr + typed.stdout


def test_enroll_without_a_token_file_uses_the_enrollment_file_and_deletes_it(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    config, enroll_file, state = _rolled_out(tmp_path, _bundle(c, f"127.0.0.1:{c.enroll_port}"))
    done = run(AGENT, "enroll", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert _enrolled(state) and not enroll_file.exists()
    again = run(AGENT, "enroll", "--config", str(config), "--force")
    assert again.returncode == 1 and f"there is no enrollment file at {enroll_file}" in (
        again.stderr
    )
