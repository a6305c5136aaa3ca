"""The command lines load with Python's garbage collector paused (devposture/command_start.py):
no collection while their modules load, what they loaded set aside, collections as before
once the command runs; and the console scripts, `python -m` and the frozen programs all
start that way."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Counts the collections started while `{load}` runs, then what the collector does after it.
_PROBE = """
import gc, json
from devposture.command_start import loading
started = []
gc.callbacks.append(lambda phase, info: started.append(1) if phase == "start" else None)
{load}
during = len(started)
enabled, frozen = gc.isenabled(), gc.get_freeze_count()
garbage = [[] for _ in range(50_000)]
for item in garbage:
    item.append(item)  # cycles, for the collector to find
del garbage, item
print(json.dumps({{"during": during, "enabled": enabled, "frozen": frozen,
                  "after": len(started) - during}}))
"""


def _probe(load: str, *, disabled: bool = False) -> dict[str, int]:
    code = ("import gc; gc.disable()\n" if disabled else "") + _PROBE.format(load=load)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("command_line", ["devposture.collector.cli", "devposture.agent.cli"])
def test_a_command_line_loads_without_a_collection_and_collects_after(command_line: str) -> None:
    """Imported plainly, the command line sets off collections as it loads (what the pause
    saves); loaded by `loading`, none, every object it made set aside, and the garbage made
    after is collected as before."""
    plain = _probe(f"import {command_line}")
    assert plain["during"] > 0 and plain["frozen"] == 0
    paused = _probe(f"with loading():\n import {command_line}")
    assert paused["during"] == 0
    assert paused["frozen"] > 10_000  # the modules' functions, classes and constants
    assert paused["enabled"] and paused["after"] > 0


def test_a_collector_disabled_before_stays_disabled() -> None:
    """A program that runs without the cyclic collector keeps it off."""
    kept_off = _probe("with loading():\n import argparse", disabled=True)
    assert not kept_off["enabled"] and kept_off["after"] == 0 and kept_off["frozen"] > 0


def test_every_way_of_starting_a_command_line_goes_through_the_launch() -> None:
    """The console scripts (this checkout's and the packages' pyproject files), `python -m`
    and the frozen programs' scripts start the launch, which runs the command line."""
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for side in ("agent", "collector"):
        launch = f"devposture.{side}.launch"
        assert scripts[f"devposture-{side}"] == f"{launch}:main"
        package = (ROOT / "installers" / "python" / side / "pyproject.toml").read_text()
        assert f'devposture-{side} = "{launch}:main"' in package
        frozen = (ROOT / "installers" / "python" / "freeze" / f"devposture-{side}.py").read_text()
        main_module = (ROOT / side / "__main__.py").read_text()
        for script in (frozen, main_module):
            assert f"from {launch} import main\n" in script
        done = subprocess.run([sys.executable, "-m", f"devposture.{side}", "--version"],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0 and done.stdout.startswith(f"devposture-{side} "), done.stderr
