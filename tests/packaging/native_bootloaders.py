"""Real Windows and macOS executables for the installer tests: PyInstaller's own bootloaders.

The MSI and the .pkg carry a program frozen on a Windows or macOS build machine
(installers/README.md); no Linux machine can freeze for those systems. The package tests
here check the assembly (every file, its place, mode and owner, the metadata, the scripts),
so they need a tree shaped like PyInstaller's one-folder output whose main file is a real
executable of the target system, which the builders insist on (a PE32+ for x64, a Mach-O).

The executable is the one PyInstaller itself puts at the head of every frozen program: its
bootloader, from PyInstaller's published wheel for that system, at the version and with the
hashes installers/python/build-requirements.txt locks. It is downloaded from PyPI once and
cached outside the repository ($DEVPOSTURE_CACHE). It is a stand-in for the frozen agent in
these tests only: `installers/windows` and `installers/macos` take the real frozen folder from
the native build machines (.github/workflows/native-installers.yml).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.caches import cache_dir
from tests.packaging.conftest import REPO, unavailable

LOCK = REPO / "installers" / "python" / "build-requirements.txt"
# The wheel's platform tag, and the bootloader's path inside it.
WHEELS = {
    "windows": ("win_amd64", "PyInstaller/bootloader/Windows-64bit-intel/run.exe"),
    "macos": ("macosx_10_13_universal2", "PyInstaller/bootloader/Darwin-64bit/run"),
}


def _locked_requirement() -> str:
    """PyInstaller's lines of the lock file, with every hash, as one requirement."""
    text = LOCK.read_text()
    match = re.search(r"^pyinstaller==\S+(?:[ \t]*\\\n[ \t]+--hash=\S+)+", text, re.MULTILINE)
    assert match, f"no hash-locked pyinstaller in {LOCK}"
    return match.group(0) + "\n"


def bootloader(system: str) -> Path:
    """The cached bootloader executable of `system` ("windows" or "macos")."""
    tag, member = WHEELS[system]
    requirement = _locked_requirement()
    version = requirement.split("==", 1)[1].split()[0]
    folder = cache_dir() / "native-bootloaders" / f"pyinstaller-{version}-{tag}"
    target = folder / Path(member).name
    if target.exists():
        return target
    download = folder / "wheel"
    download.mkdir(parents=True, exist_ok=True)
    requirements = folder / "requirements.txt"
    requirements.write_text(requirement)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         "--only-binary", ":all:", "--platform", tag, "--dest", str(download),
         "-r", str(requirements)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    wheels = list(download.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        unavailable(f"cannot download PyInstaller {version} for {tag} from PyPI: {done.stderr}")
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as source:
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    partial.replace(target)
    return target
