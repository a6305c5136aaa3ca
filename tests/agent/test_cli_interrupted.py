"""Ctrl-C on `devposture-agent`: one line that says so, in the reader's language, with the shell's
code for it (130), as `devposture-collector` ends. It ended silently, and a Chinese reader could
not tell an interrupted enrollment from a finished one.

A real process and a real SIGINT: the agent enrolls with a "collector" that takes its connection
and never answers; the test sends the signal once it holds that connection, so the agent is
waiting on the network, as a person at a slow collector would press Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

AGENT = str(Path(sys.executable).parent / "devposture-agent")
PIN = "sha256:" + "c0" * 32
# Bounds for a machine that stalls, never a measure of speed: each step returns as soon as it
# happens.
PATIENCE = 120


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        ("zh_CN.UTF-8", "devposture-agent：错误：已中断（Ctrl-C）\n"),
        ("C.UTF-8", "devposture-agent: error: interrupted (Ctrl-C)\n"),
    ],
)
def test_ctrl_c_ends_the_agent_with_one_line_and_code_130(
    tmp_path: Path, lang: str, line: str
) -> None:
    token = tmp_path / "token"
    token.write_text("dpt_0123456789abcdef_" + "x" * 43 + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANGUAGE"))}
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(PATIENCE)
        agent = subprocess.Popen(
            [AGENT, "enroll", "--token-file", str(token), "--collector",
             f"127.0.0.1:{silent.getsockname()[1]}", "--ca-fingerprint", PIN,
             "--state", str(tmp_path / "state")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env | {"LANG": lang},
        )  # fmt: skip
        try:
            connection, _ = silent.accept()  # the agent waits for the collector's answer
            with connection:
                agent.send_signal(signal.SIGINT)
                out, err = agent.communicate(timeout=PATIENCE)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    assert (agent.returncode, out, err) == (130, "", line)
