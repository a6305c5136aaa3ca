"""Turn the agent frozen on a Mac into a flat installer package, on any system (no Apple tool).

    python3 installers/macos/build_pkg.py --frozen DIR [--version V] \\
        --out dist/devposture-agent-V.pkg

DIR is PyInstaller's one-folder output made on a macOS build machine: the `devposture-agent`
executable (a Mach-O for x86_64 and/or arm64: anything else is refused) and `_internal/`.
The result is a product archive (what productbuild makes, what MDMs and `installer -pkg`
take): a xar holding

    Distribution                    title, macOS 11 or later, the program's architectures,
                                    installed on the startup disk, one component:
    devposture-agent.pkg/
        PackageInfo                 com.devposture.agent.pkg, version, installs at /, as root
        Bom                         every path of the payload: mode, owner, size, checksum
        Payload                     gzip of an odc cpio, everything root:wheel:
            /opt/devposture-agent/lib/devposture-agent/    the frozen folder (modes kept,
                                            less group and other write bits)
            /opt/devposture-agent/bin/devposture-agent -> ../lib/devposture-agent/devposture-agent
            /Library/LaunchDaemons/com.devposture.agent.plist   (0644; launchd.py)
        Scripts                     gzip of an odc cpio: preinstall, postinstall (scripts/)

The folders the agent writes to (/Library/Application Support/devposture with state/, and
/Library/Logs/devposture) are made by postinstall, not carried in the payload: the receipt
then does not own them, and an upgrade or `pkgutil --forget` never touches IT's configuration
or the agent's state. Every date inside is SOURCE_DATE_EPOCH (else the last commit's time):
the same input gives the same bytes. The package is unsigned; sign it with productsign on a
Mac (installers/README.md) before MDM distributes it.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "installers" / "python"))
import bom  # noqa: E402
import cpio_odc  # noqa: E402
import launchd  # noqa: E402
import macho  # noqa: E402
import pkg_xml  # noqa: E402
import wheels  # noqa: E402 (the agent's version, as every package reads it)
import xar  # noqa: E402
from pkg_payload import Payload, PayloadError  # noqa: E402

NAME = "devposture-agent"
IDENTIFIER = "com.devposture.agent.pkg"
COMPONENT = f"{NAME}.pkg"
PROGRAM_DIR = f"opt/{NAME}/lib/{NAME}"
LINK = f"opt/{NAME}/bin/{NAME}"
UNINSTALL = f"opt/{NAME}/uninstall.sh"
LINK_TARGET = f"../lib/{NAME}/{NAME}"
SCRIPTS = ("preinstall", "postinstall")
VERSION = re.compile(r"\d+(\.\d+){0,3}")


class BuildError(Exception):
    """The package cannot be built from what was given; the message says how to fix it."""


def source_date() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time (the same tree gives the same dates)."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return int(done.stdout.strip() or 0)


def frozen_folder(given: Path) -> tuple[Path, list[str]]:
    """The one-folder program (`given`, or its devposture-agent/ as PyInstaller's dist/ has
    it) and the architectures of its executable."""
    folder = given / NAME if (given / NAME).is_dir() else given
    program = folder / NAME
    if program.is_symlink() or not program.is_file():
        raise BuildError(
            f"{folder} has no {NAME} executable: --frozen is the folder PyInstaller made on the"
            f" Mac (dist/{NAME}/, holding {NAME} and _internal/)"
        )
    if not (folder / "_internal").is_dir():
        raise BuildError(
            f"{folder} has no _internal/ beside {NAME}: pass the whole one-folder output of"
            " PyInstaller, not the executable alone"
        )
    try:
        return folder, macho.architectures(program)
    except macho.NotMacProgram as exc:
        raise BuildError(str(exc)) from None


def payload(frozen: Path, scratch: Path) -> Payload:
    tree = Payload()
    tree.add_folder(PROGRAM_DIR, frozen)
    # 0755 whatever its mode in the build artefact (an artefact's zip loses modes).
    tree.set_mode(f"{PROGRAM_DIR}/{NAME}", 0o755)
    tree.add_symlink(LINK, LINK_TARGET)
    plist = scratch / "daemon.plist"
    plist.write_bytes(launchd.render())
    tree.add_file(launchd.PLIST.lstrip("/"), 0o644, source=plist)
    # Removal: macOS packages have no uninstaller of their own.
    tree.add_file(UNINSTALL, 0o755, source=HERE / "uninstall.sh")
    return tree


def _gzip_cpio(tree: Payload, out: Path, when: int) -> int:
    with out.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                              compresslevel=9, mtime=when) as packed:  # fmt: skip
        return cpio_odc.write(tree.entries(), packed, mtime=when)


def build(frozen_given: Path, version: str, out: Path) -> Path:
    if not VERSION.fullmatch(version):
        raise BuildError(f"--version {version!r}: write it as numbers and dots, e.g. 1.4.0")
    frozen, architectures = frozen_folder(frozen_given)
    when = source_date()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="devposture-pkg-") as scratch_name:
        scratch = Path(scratch_name)
        component = scratch / "flat" / COMPONENT
        component.mkdir(parents=True)
        try:
            tree = payload(frozen, scratch)
        except PayloadError as exc:
            raise BuildError(str(exc)) from None
        entries = tree.entries()
        files = _gzip_cpio(tree, component / "Payload", when)
        (component / "Bom").write_bytes(bom.render(entries, mtime=when))
        kbytes = (sum(entry.size for entry in entries) + 1023) // 1024
        (component / "PackageInfo").write_bytes(pkg_xml.package_info(
            identifier=IDENTIFIER, version=version, files=files, kbytes=kbytes))  # fmt: skip
        scripts = Payload()
        for name in SCRIPTS:
            scripts.add_file(name, 0o755, source=HERE / "scripts" / name)
        _gzip_cpio(scripts, component / "Scripts", when)
        distribution = scratch / "flat" / "Distribution"
        distribution.write_bytes(pkg_xml.distribution(
            identifier=IDENTIFIER, version=version, component=COMPONENT, kbytes=kbytes,
            architectures=architectures))  # fmt: skip
        members = [
            xar.Member("Distribution", distribution),
            xar.Member(f"{COMPONENT}/Bom", component / "Bom"),
            xar.Member(f"{COMPONENT}/PackageInfo", component / "PackageInfo"),
            xar.Member(f"{COMPONENT}/Scripts", component / "Scripts", compress=False),
            xar.Member(f"{COMPONENT}/Payload", component / "Payload", compress=False),
        ]
        partial = out.with_name(out.name + ".partial")
        try:
            with partial.open("wb") as stream:
                xar.write(members, stream, created=when)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frozen",
        type=Path,
        required=True,
        help="the one-folder agent frozen on a Mac (devposture-agent, _internal/)",
    )
    parser.add_argument(
        "--version", default="", help="the package's version (default: the agent's)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .pkg to write")
    args = parser.parse_args()
    try:
        print(build(args.frozen, args.version or wheels.version(), args.out))
    except BuildError as exc:
        print(f"build_pkg.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
