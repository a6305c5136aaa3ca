"""The frozen agent the packages carry runs Python's -OO: its bytecode holds no docstrings or
asserts and its interpreter is told so (`installers/python/freeze/devposture.spec`: 1.5 MB of
the service's resident memory, bench/agent_service_idle.py --agent). The frozen collector's
bytecode is as Python compiles it. Read from the programs in the .deb packages with
PyInstaller's own archive reader (the build venv's, which froze them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.caches import cache_dir
from tests.packaging.conftest import REPO

sys.path.insert(0, str(REPO / "installers" / "python"))
from freeze import build_venv

# The frozen program's interpreter options, and the first constant of its launch module's code
# (its docstring where it has one).
_READ = """
import json, sys
from PyInstaller.archive.readers import CArchiveReader
archive = CArchiveReader(sys.argv[1])
launch = archive.open_embedded_archive("PYZ.pyz").extract(sys.argv[2])
print(json.dumps({"options": archive.options, "first": repr(launch.co_consts[0])}))
"""


def _frozen(program: str, deb: Path, into: Path) -> dict[str, object]:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    python = build_venv("agent", "/usr/bin/python3.11", cache_dir()) / "bin" / "python"
    executable = into / "opt" / f"devposture-{program}" / "lib" / f"devposture-{program}"
    done = subprocess.run(
        [str(python), "-c", _READ, str(executable), f"devposture.{program}.launch"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    read: dict[str, object] = json.loads(done.stdout)
    return read


def test_the_frozen_agent_runs_without_docstrings_the_collector_with(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    agent = _frozen("agent", packages["agent.deb"], tmp_path / "agent")
    assert [o for o in agent["options"] if o == "O"] == ["O", "O"]  # type: ignore[attr-defined]
    assert agent["first"] == "0"  # its docstring left out: the first constant is an int
    collector = _frozen("collector", packages["collector.deb"], tmp_path / "collector")
    assert "O" not in collector["options"]  # type: ignore[operator]
    assert str(collector["first"]).startswith("\"`devposture-collector`'s entry point")
