"""Build the three wheels from the repository's folders, without copying a source file into git.

    python installers/python/wheels.py --out DIR [--stage DIR]

Each distribution is staged in a scratch folder from its pyproject template here (the version
filled in from `devposture.agent.__version__`) and the folders it holds:

* devposture-common: protos/devposture/ less agent/ and collector/ (owns devposture/__init__.py);
* devposture-agent: agent/ as devposture/agent/;
* devposture-collector: collector/ as devposture/collector/.

So the agent and the collector in one Python never have two owners of one file. Run it with a
Python that has the pinned setuptools (build-requirements.txt): the build is not isolated, so
no unpinned build backend is downloaded.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DISTRIBUTIONS = {
    # name: (template folder here, {staged package folder: repository folder})
    "devposture-common": ("common", {"devposture": REPO / "protos" / "devposture"}),
    "devposture-agent": ("agent", {"devposture/agent": REPO / "agent"}),
    "devposture-collector": ("collector", {"devposture/collector": REPO / "collector"}),
}
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "agent", "collector")
_SKIP_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


def version() -> str:
    """The agent's version: all three distributions carry it (the agent and the collector
    require devposture-common of exactly their own version)."""
    text = (REPO / "agent" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if found is None:
        raise SystemExit("agent/__init__.py has no __version__ = \"...\" line")
    return found.group(1)


def stage(distribution: str, into: Path, release: str) -> Path:
    """A folder holding the distribution's pyproject.toml, README.md and packages."""
    template, folders = DISTRIBUTIONS[distribution]
    root = into / template
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    text = (HERE / template / "pyproject.toml").read_text(encoding="utf-8")
    text = re.sub(r'^version = "0\.0\.0"', f'version = "{release}"', text, flags=re.M)
    text = text.replace('"devposture-common==0.0.0"', f'"devposture-common=={release}"')
    (root / "pyproject.toml").write_text(text, encoding="utf-8")
    shutil.copy2(HERE / template / "README.md", root / "README.md")
    for staged, source in folders.items():
        # The common part's folder holds the links to agent/ and collector/: leave them out.
        skip = _SKIP if staged == "devposture" else _SKIP_CACHES
        shutil.copytree(source, root / staged, ignore=skip)
    return root


def build(out: Path, stage_dir: Path) -> list[Path]:
    """Stage and build every distribution's wheel into `out`; returns the wheels."""
    out.mkdir(parents=True, exist_ok=True)
    release = version()
    wheels = []
    for distribution in DISTRIBUTIONS:
        root = stage(distribution, stage_dir, release)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--no-cache-dir", "--wheel-dir", str(out), str(root)],
            check=True, env={**os.environ, "PIP_NO_INPUT": "1"},
        )  # fmt: skip
        name = distribution.replace("-", "_")
        wheels.append(out / f"{name}-{release}-py3-none-any.whl")
    missing = [w.name for w in wheels if not w.exists()]
    if missing:
        raise SystemExit(f"the build made no {', '.join(missing)}")
    return wheels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the wheels")
    parser.add_argument("--stage", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="devposture-stage-") as scratch:
        for wheel in build(args.out, args.stage or Path(scratch)):
            print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
