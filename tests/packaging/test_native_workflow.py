"""The Windows and macOS build recipe, checked on Linux: the workflow that freezes the agent on
GitHub's Windows and macOS runners (.github/workflows/native-installers.yml) and the freeze
recipe's choices for each system (installers/python/platform_choices.py, which
freeze/devposture.spec and freeze.py ask).

The workflow itself runs only on those runners; what it does there (PyInstaller on Windows and
macOS, the frozen agent's `collect --json`, codesign) is not run here. Here: it parses (read by
a real YAML parser, Debian's python3-yaml under /usr/bin/python3: the project's venv has no YAML
library and needs none), it asks for no more than read access, every action is pinned by
commit, every script and test it names exists and takes the options it is given, and no secret
is pasted into a shell script. The choices are tested as data for "linux", "win32" and
"darwin"; the Windows version resource is read back by PyInstaller's own parser and serializer
(from the locked PyInstaller in the Linux build venv); the hash locks are checked to pin every
dependency that the Windows and macOS builds install, with the dependencies' own markers
evaluated for those systems.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.conftest import REPO, unavailable

PYTHON_DIR = REPO / "installers" / "python"
WORKFLOW = REPO / ".github" / "workflows" / "native-installers.yml"
SPEC = PYTHON_DIR / "freeze" / "devposture.spec"
sys.path.insert(0, str(PYTHON_DIR))
import freeze  # noqa: E402
import platform_choices  # noqa: E402
import wheels  # noqa: E402
from platform_choices import IDENTIFIER, for_system, resign_command  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
_READ_YAML = """
import json, sys, yaml
with open(sys.argv[1], encoding="utf-8") as f:
    data = yaml.safe_load(f)
if True in data:  # YAML 1.1 reads the key `on` as true
    data["on"] = data.pop(True)
print(json.dumps(data))
"""
RUNNERS = {"freeze-windows": "windows-latest", "freeze-macos": "macos-14",
           "msi": "ubuntu-24.04", "pkg": "ubuntu-24.04", "sign-pkg": "macos-14"}  # fmt: skip
# Marker environments of the native build machines (CPython 3.11, as the workflow installs).
TARGETS = {
    "win32": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
              "platform_machine": "AMD64"},
    "darwin": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
               "platform_machine": "arm64"},
}  # fmt: skip
COMMON_MARKERS = {"python_version": "3.11", "python_full_version": "3.11.9",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython",
                  "extra": ""}  # fmt: skip


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", _READ_YAML, str(WORKFLOW)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    except FileNotFoundError:
        unavailable(f"no {SYSTEM_PYTHON} to read YAML with (apt-get install python3-yaml)")
    if "No module named 'yaml'" in done.stderr:
        unavailable(f"{SYSTEM_PYTHON} has no yaml module (apt-get install python3-yaml)")
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield name, step


def _scripts(workflow: dict[str, Any]) -> list[str]:
    return [step["run"] for _, step in _steps(workflow) if "run" in step]


def _commands(workflow: dict[str, Any]) -> list[list[str]]:
    """Every shell line of the workflow's scripts, split into words (continuations joined)."""
    commands = []
    for script in _scripts(workflow):
        for line in script.replace("\\\n", " ").splitlines():
            try:
                commands.append(shlex.split(line, comments=True))
            except ValueError:  # a heredoc's Python line, not a command
                continue
    return commands


def test_the_workflow_asks_for_read_access_only(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert not [name for name, job in workflow["jobs"].items() if "permissions" in job]
    checkouts = [step for _, step in _steps(workflow)
                 if step.get("uses", "").startswith("actions/checkout@")]  # fmt: skip
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_each_job_runs_on_its_system(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    assert {name: job["runs-on"] for name, job in jobs.items()} == RUNNERS
    assert jobs["msi"]["needs"] == "freeze-windows"
    assert jobs["pkg"]["needs"] == "freeze-macos"
    assert "pkg" in jobs["sign-pkg"]["needs"] and jobs["sign-pkg"]["if"]


def test_every_action_is_pinned_by_commit() -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", WORKFLOW.read_text(), re.MULTILINE)
    assert len(uses) >= 10
    for action, comment in uses:
        assert re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), f"{action}: say its version"


def test_the_agent_is_frozen_by_python_311_on_both_systems(workflow: dict[str, Any]) -> None:
    for job in ("freeze-windows", "freeze-macos"):
        steps = workflow["jobs"][job]["steps"]
        setup = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
        assert setup and setup[0]["with"]["python-version"] == "3.11"
        runs = "\n".join(s.get("run", "") for s in steps)
        assert "installers/python/freeze.py agent --build-wheels" in runs
        assert "collect --json" in runs and "pytest" in runs


def test_every_script_the_workflow_runs_exists(workflow: dict[str, Any]) -> None:
    named = {word for command in _commands(workflow) for word in command
             if re.fullmatch(r"(installers|tests|scripts)/[\w./-]+\.(py|sh)", word)}  # fmt: skip
    assert {"installers/python/freeze.py", "installers/windows/build_msi.py",
            "installers/macos/build_pkg.py", "installers/macos/mobileconfig.py"} <= named
    assert not [path for path in sorted(named) if not (REPO / path).is_file()]


def test_every_test_the_workflow_runs_exists(workflow: dict[str, Any]) -> None:
    named = []
    for command in _commands(workflow):
        runner = [i for i, word in enumerate(command) if word.rsplit("/", 1)[-1] == "pytest"]
        if runner:
            named += [word for word in command[runner[0] + 1:] if word.startswith("tests/")]
    assert {"tests/agent/windows", "tests/agent/macos", "tests/packaging/test_windows_msi.py",
            "tests/packaging/test_macos_pkg.py"} <= set(named)  # fmt: skip
    for path in named:
        found = REPO / path
        assert found.is_file() or list(found.glob("test_*.py")), f"{path}: no such test"


def test_each_script_takes_the_options_the_workflow_gives(workflow: dict[str, Any]) -> None:
    """`SCRIPT --help` names every --option the workflow passes to it."""
    checked = 0
    for command in _commands(workflow):
        scripts = [w for w in command if re.fullmatch(r"installers/[\w/]+\.py", w)]
        if not scripts or not (REPO / scripts[0]).is_file():
            continue  # a missing script fails the test above
        options = {w.split("=")[0] for w in command if w.startswith("--")}
        shown = subprocess.run([sys.executable, str(REPO / scripts[0]), "--help"], cwd=REPO,
                               capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert not [o for o in options if o not in shown.stdout], (scripts[0], shown.stdout)
        checked += 1
    assert checked >= 1


def test_no_secret_or_expression_is_pasted_into_a_script(workflow: dict[str, Any]) -> None:
    """Secrets reach the scripts as environment variables: an expression inside `run:` would
    be pasted into the shell text before it runs (and show in a fork's logs)."""
    assert not [script for script in _scripts(workflow) if "${{" in script]
    text = WORKFLOW.read_text()
    for found in re.finditer(r"\$\{\{\s*secrets\.(\w+)\s*\}\}", text):
        line = text[text.rindex("\n", 0, found.start()) + 1:found.start()]
        assert re.fullmatch(r"\s+\w+: ", line), f"secrets.{found.group(1)} outside env:"


def test_linux_choices_are_what_the_linux_packages_were_built_with() -> None:
    choices = for_system("linux", {"DEVPOSTURE_CODESIGN_IDENTITY": "ignored"})
    assert choices.strip and choices.console
    assert choices.system_libraries == ("libstdc++.so", "libgcc_s.so")
    assert choices.target_arch is None and choices.codesign_identity is None
    assert choices.entitlements_file is None and not choices.version_resource
    assert choices.executable("devposture-agent") == "devposture-agent"


def test_windows_choices() -> None:
    choices = for_system("win32", {"DEVPOSTURE_CODESIGN_IDENTITY": "ignored"})
    assert not choices.strip  # no strip tool on Windows
    assert choices.console  # the service, the MSI's custom actions and IT's terminal
    assert choices.system_libraries == ()  # vcruntime140.dll comes along
    assert choices.version_resource
    assert choices.target_arch is None and choices.codesign_identity is None
    assert choices.executable("devposture-agent") == "devposture-agent.exe"


def test_macos_choices_sign_with_the_identity_given_else_ad_hoc() -> None:
    given = for_system("darwin", {"DEVPOSTURE_CODESIGN_IDENTITY": "Developer ID Application: X",
                                  "DEVPOSTURE_ENTITLEMENTS_FILE": "/tmp/e.plist"})  # fmt: skip
    assert given.target_arch == "arm64" and given.strip and given.console
    assert given.codesign_identity == "Developer ID Application: X"
    assert given.entitlements_file == "/tmp/e.plist"
    assert given.executable("devposture-agent") == "devposture-agent"
    for environ in ({}, {"DEVPOSTURE_CODESIGN_IDENTITY": ""}):
        ad_hoc = for_system("darwin", environ)
        assert ad_hoc.codesign_identity is None and ad_hoc.entitlements_file is None


def test_another_system_is_refused() -> None:
    with pytest.raises(ValueError, match="freebsd"):
        for_system("freebsd14", {})


def test_the_macos_program_is_signed_as_com_devposture_agent() -> None:
    ad_hoc = resign_command("/x/devposture-agent", for_system("darwin", {}))
    assert ad_hoc[0] == "/usr/bin/codesign" and ad_hoc[-1] == "/x/devposture-agent"
    assert ad_hoc[ad_hoc.index("--identifier") + 1] == IDENTIFIER == "com.devposture.agent"
    assert ad_hoc[ad_hoc.index("--sign") + 1] == "-"
    assert "--timestamp" not in ad_hoc and "runtime" not in ad_hoc and "--force" in ad_hoc
    real = resign_command("/x/devposture-agent", for_system("darwin", {
        "DEVPOSTURE_CODESIGN_IDENTITY": "Developer ID Application: Corp (ABCDE12345)",
        "DEVPOSTURE_ENTITLEMENTS_FILE": "/e.plist"}))  # fmt: skip
    assert real[real.index("--sign") + 1] == "Developer ID Application: Corp (ABCDE12345)"
    assert real[real.index("--options") + 1] == "runtime" and "--timestamp" in real
    assert real[real.index("--entitlements") + 1] == "/e.plist"
    assert real[real.index("--identifier") + 1] == IDENTIFIER
    with pytest.raises(ValueError):
        resign_command("x", for_system("linux", {}))


@pytest.mark.parametrize(("version", "numbers"), [
    ("0.1.0", (0, 1, 0, 0)), ("1.2.3rc1", (1, 2, 3, 0)), ("2", (2, 0, 0, 0)),
    ("1.2.3.4", (1, 2, 3, 4)), ("10.20.30.dev4", (10, 20, 30, 0)),
])  # fmt: skip
def test_windows_version_numbers(version: str, numbers: tuple[int, ...]) -> None:
    assert platform_choices.version_numbers(version) == numbers


@pytest.mark.parametrize("version", ["1.2.3.4.5", "70000.1", "v1.0", ""])
def test_a_version_windows_cannot_hold_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="version"):
        platform_choices.version_numbers(version)


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == name]  # fmt: skip


def test_the_version_file_names_the_agent_and_its_version() -> None:
    version = wheels.version()
    tree = ast.parse(platform_choices.windows_version_info("devposture-agent", version),
                     mode="eval")  # fmt: skip
    assert isinstance(tree.body, ast.Call) and ast.unparse(tree.body.func) == "VSVersionInfo"
    ffi = _calls(tree, "FixedFileInfo")[0]
    fixed = {k.arg: ast.literal_eval(k.value) for k in ffi.keywords}
    assert fixed["filevers"] == fixed["prodvers"] == platform_choices.version_numbers(version)
    strings = dict(ast.literal_eval(ast.unparse(call)[len("StringStruct"):])
                   for call in _calls(tree, "StringStruct"))  # fmt: skip
    assert strings == {
        "CompanyName": "devposture", "FileDescription": "devposture agent",
        "FileVersion": version, "InternalName": "devposture-agent",
        "OriginalFilename": "devposture-agent.exe", "ProductName": "devposture agent",
        "ProductVersion": version,
    }  # fmt: skip


def test_the_spec_takes_every_system_dependent_option_from_platform_choices() -> None:
    tree = ast.parse(SPEC.read_text())
    assert "for_system(sys.platform, os.environ)" in ast.unparse(tree)
    assert "platform.system" not in SPEC.read_text()
    assert not [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Compare)
                and "platform" in ast.unparse(n)]  # fmt: skip
    exe = {k.arg: ast.unparse(k.value) for k in _calls(tree, "EXE")[0].keywords}
    assert exe["strip"] == "choices.strip" and exe["console"] == "choices.console"
    assert exe["target_arch"] == "choices.target_arch"
    assert exe["codesign_identity"] == "choices.codesign_identity"
    assert exe["entitlements_file"] == "choices.entitlements_file"
    assert exe["version"] == "version_file" and exe["upx"] == "False"
    collect = {k.arg: ast.unparse(k.value) for k in _calls(tree, "COLLECT")[0].keywords}
    assert collect["strip"] == "choices.strip"
    assert "choices.system_libraries" in ast.unparse(tree)


def test_freeze_finds_a_venvs_programs_on_each_system(tmp_path: Path) -> None:
    assert freeze.venv_bin(tmp_path, "python", "win32") == tmp_path / "Scripts" / "python.exe"
    assert freeze.venv_bin(tmp_path, "pyinstaller", "darwin") == tmp_path / "bin" / "pyinstaller"
    assert freeze.venv_bin(tmp_path, "python", "linux") == tmp_path / "bin" / "python"
    assert freeze.default_python("linux") == "/usr/bin/python3.11" == freeze.DEFAULT_PYTHON
    assert freeze.default_python("win32") == sys.executable
    assert freeze.NATIVE == {"linux": ("agent", "collector"), "win32": ("agent",),
                             "darwin": ("agent",)}  # fmt: skip


def _build_venv() -> Path:
    """The agent's Linux build venv (the locked PyInstaller), made now if `make packages` has
    not made it already."""
    if sys.platform != "linux" or not Path(freeze.DEFAULT_PYTHON).exists():
        unavailable(f"the build venv is made from {freeze.DEFAULT_PYTHON} (python3.11-venv)")
    return freeze.build_venv("agent", freeze.DEFAULT_PYTHON, freeze.default_cache())


_READ_VERSION_INFO = """
import json, sys, types
# Only the parts that read and write executables need these; parsing and serializing do not.
sys.modules["pefile"] = types.ModuleType("pefile")
import PyInstaller.compat
PyInstaller.compat.win32api = None
from PyInstaller.utils.win32 import versioninfo
info = versioninfo.load_version_info_from_text_file(sys.argv[1])
print(json.dumps({"raw": info.toRaw().hex(), "type": type(info).__name__}))
"""


def test_pyinstaller_reads_the_version_file_into_a_version_resource(tmp_path: Path) -> None:
    version = wheels.version()
    text = tmp_path / "version-info.txt"
    text.write_text(platform_choices.windows_version_info("devposture-agent", version))
    done = subprocess.run([str(freeze.venv_bin(_build_venv(), "python")), "-I", "-c",
                           _READ_VERSION_INFO, str(text)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["type"] == "VSVersionInfo"
    raw = bytes.fromhex(result["raw"])
    # VS_FIXEDFILEINFO, which PyInstaller packs as 13 native unsigned longs (4 bytes each on
    # Windows, 8 here): the signature, the structure version, the file and product versions
    # as two DWORDs each (major.minor, micro.build), the flags' mask, flags, OS, file type.
    fixed = struct.unpack_from("13L", raw, raw.index((0xFEEF04BD).to_bytes(4, "little")))
    major, minor, micro, build = platform_choices.version_numbers(version)
    ms, ls = major << 16 | minor, micro << 16 | build
    assert fixed[0] == 0xFEEF04BD and fixed[2:6] == (ms, ls, ms, ls)
    assert fixed[8:10] == (0x40004, 1)  # VOS_NT_WINDOWS32, VFT_APP
    for value in ("devposture agent", "devposture", f"{version}", "devposture-agent.exe",
                  "ProductName", "CompanyName", "FileVersion"):
        assert value.encode("utf-16-le") in raw, value


def _pins(lock: Path) -> dict[str, list[str]]:
    """Canonical name -> the sha256 hashes, for every requirement of a pip-compile lock."""
    pins: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock.read_text()):
        first = block.split(" ", 1)[0]
        if "==" in first:
            pins[canonicalize_name(first.split("==")[0])] = re.findall(r"sha256:([0-9a-f]{64})",
                                                                       block)  # fmt: skip
    return pins


_REQUIRES = """
import json
from importlib.metadata import distributions
print(json.dumps({d.metadata["Name"]: d.requires or [] for d in distributions()}))
"""


@pytest.mark.parametrize("system", sorted(TARGETS))
def test_the_locks_pin_what_the_native_build_installs(system: str) -> None:
    """`pip install --require-hashes` of agent-requirements.txt and build-requirements.txt on
    the Windows or macOS runner installs every pinned distribution and, on that system, each
    one's dependencies: all must be pinned with hashes, or pip refuses to install. The
    dependencies are read from the distributions installed in the Linux build venv, their
    markers evaluated for the other system (PyInstaller needs pefile and pywin32-ctypes on
    Windows, macholib on macOS)."""
    pins = _pins(PYTHON_DIR / "agent-requirements.txt") | _pins(
        PYTHON_DIR / "build-requirements.txt")
    assert all(pins.values()), [name for name, hashes in pins.items() if not hashes]
    done = subprocess.run([str(freeze.venv_bin(_build_venv(), "python")), "-I", "-c", _REQUIRES],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    installed: dict[str, list[str]] = {
        canonicalize_name(k): v for k, v in json.loads(done.stdout).items()
    }
    environment = {**COMMON_MARKERS, **TARGETS[system]}
    missing = set()
    for name in pins:
        for line in installed.get(name, []):
            requirement = Requirement(line)
            marker: Marker | None = requirement.marker
            needed = marker is None or marker.evaluate(environment)
            if needed and canonicalize_name(requirement.name) not in pins:
                missing.add(f"{requirement} (for {name})")
    assert not missing, (f"{system}: the locks lack {sorted(missing)}: pin them in lock.py's"
                         " BUILD_TOOLS and run it")  # fmt: skip
