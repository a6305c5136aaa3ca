"""`devposture-collector completion bash|zsh`: the scripts, generated from the parser, complete
commands, options and --format's choices in a real bash; zsh loads its script as the
completion of devposture-collector."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")


def _script(shell: str) -> str:
    done = subprocess.run([COLLECTOR, "completion", shell], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _bash_completes(script: Path, words: list[str]) -> set[str]:
    """What bash offers for the last of `words`, as it would at the prompt."""
    line = " ".join(words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
        "_shtab_devposture_collector; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {w for w in done.stdout.splitlines() if w}


def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "devposture-collector.bash"
    script.write_text(_script("bash"))
    assert _bash_completes(script, ["devposture-collector", "rep"]) == {"report"}
    assert _bash_completes(script, ["devposture-collector", "report", "f"]) == {
        "fleet", "failing",
    }  # fmt: skip
    assert _bash_completes(script, ["devposture-collector", "report", "failing", "--format",
                                    ""]) == {"table", "json", "csv", "xlsx"}  # fmt: skip
    assert _bash_completes(script, ["devposture-collector", "device", "show", "--pro"]) == {
        "--profile",
    }  # fmt: skip
    assert "--limit" in _bash_completes(script, ["devposture-collector", "waiver", "list", "--"])


def test_zsh_loads_the_script_as_devposture_collector_s_completion(tmp_path: Path) -> None:
    text = _script("zsh")
    assert text.startswith("#compdef devposture-collector")
    assert "xlsx" in text and "--profile" in text
    if shutil.which("zsh") is None:
        if os.environ.get("CI"):  # .ci/run installs it: the test must not stop running quietly
            pytest.fail("zsh is not installed")
        pytest.skip("zsh is not installed: only the script's text was checked")
    (tmp_path / "_devposture-collector").write_text(text)
    assert subprocess.run(["zsh", "-n", str(tmp_path / "_devposture-collector")],
                          timeout=60, check=False).returncode == 0  # fmt: skip
    loaded = subprocess.run(
        ["zsh", "-f", "-c", f"fpath=({tmp_path} $fpath); autoload -U compinit;"
         f" compinit -u -D; print -r -- ${{_comps[devposture-collector]}}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert loaded.stdout.strip() == "_devposture-collector", loaded.stderr
