"""`make demo`: the whole path, end to end, with the real commands, in a temporary folder.

Starts a collector on loopback (embedded SQLite), enrolls this machine's agent with a one-time
token and the pinned CA fingerprint, sends one report, prints the fleet compliance table, and
shuts the collector down cleanly. Leaves no process and no file behind.

The demo's agent is a stranger to any agent installed here: its settings file, state folder
and public status folder are the demo's own. Left to the defaults it published its status into
/run/devposture-agent, over what an installed agent shows its employee, and left it there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COLLECTOR = str(BIN / "devposture-collector")
AGENT = str(BIN / "devposture-agent")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(*argv: str) -> str:
    """Run a command, echo it, fail the demo with its own error message if it fails."""
    print(
        "$ " + " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)), flush=True
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.stdout:
        print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo failed: {Path(argv[0]).name} exited with {done.returncode}")
    return done.stdout


def wait_ready(ready: Path, server: subprocess.Popen[bytes]) -> dict[str, int]:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready.exists():
            ports: dict[str, int] = json.loads(ready.read_text())
            return ports
        if server.poll() is not None:
            raise SystemExit(f"demo failed: the collector exited with {server.returncode}")
        time.sleep(0.1)
    raise SystemExit("demo failed: the collector did not start within 30 s")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise SystemExit("demo failed: the collector did not stop on SIGTERM") from None


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="devposture-demo-") as tmp:
        work = Path(tmp)
        data, state = work / "collector", work / "agent"
        token_file, ready, log = work / "token", work / "ready.json", work / "collector.log"
        settings = work / "agent.toml"  # the defaults, never /etc/devposture/agent.toml's
        settings.write_text("")
        own = ["--config", str(settings), "--state", str(state),
               "--public-folder", str(work / "public")]  # fmt: skip

        step("Set up a collector: certificate authority, server certificate, SQLite database")
        run(COLLECTOR, "init", "--data", str(data), "--listen", "127.0.0.1")
        fingerprint = subprocess.run(
            [COLLECTOR, "ca", "fingerprint", "--data", str(data)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

        step("Create a one-time enrollment token")
        token = subprocess.run(
            [COLLECTOR, "token", "create", "--data", str(data)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        token_file.write_text(token)
        token_file.chmod(0o600)
        print(f"token written to a private file ({len(token.strip())} characters)")

        step("Start the collector on loopback (free ports)")
        with log.open("wb") as log_handle:
            server = subprocess.Popen(
                [
                    COLLECTOR,
                    "serve",
                    "--drain-seconds",
                    "0",
                    "--data",
                    str(data),
                    "--enroll-port",
                    "0",
                    "--report-port",
                    "0",
                    "--admin-port",
                    "0",
                    "--metrics-port",
                    "0",
                    "--web-port",
                    "0",
                    "--ready-file",
                    str(ready),
                ],
                stdout=log_handle,
                stderr=subprocess.STDOUT,
            )
        try:
            ports = wait_ready(ready, server)
            print(
                f"enrollment on port {ports['enroll_port']}, reports on port {ports['report_port']}"
            )

            step("Enroll this machine's agent (key made here, CA pinned by fingerprint)")
            run(
                AGENT,
                "enroll",
                "--collector",
                f"127.0.0.1:{ports['enroll_port']}",
                "--token-file",
                str(token_file),
                "--ca-fingerprint",
                fingerprint,
                *own,
            )

            step("Collect this machine's posture and send one report (mutual TLS)")
            run(AGENT, "once", *own)

            step("This machine, check by check")
            run(COLLECTOR, "report", "device", "--data", str(data))

            step("Fleet compliance table")
            run(COLLECTOR, "report", "fleet", "--data", str(data))
        finally:
            step("Shut the collector down")
            stop(server)
            print(f"collector stopped (exit {server.returncode})")
    print(f"\nDemo finished in {time.monotonic() - started:.1f} s; temporary files removed.")


if __name__ == "__main__":
    main()
