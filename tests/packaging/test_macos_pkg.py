"""The macOS installer package (installers/macos/build_pkg.py), its launchd daemon and its MDM
profile (installers/macos/mobileconfig.py), checked on Linux with real readers.

The agent in the package is frozen on a macOS build machine, which Linux cannot be. Here a
stand-in frozen folder takes its place: PyInstaller's own macOS bootloader (a real universal
Mach-O, tests/packaging/native_bootloaders.py) as `devposture-agent`, and real files under
`_internal/` (the project's own modules and docs, a framework-like folder with the symbolic
links PyInstaller makes on macOS, a name with a space, one in Chinese). It stands in for the
native freeze only: what is checked is the assembly, never that the agent runs on a Mac.

The package is built once and read back with tools that did not write it: libarchive's
bsdtar and 7-Zip read the xar (and verify its checksums), GNU cpio lists and unpacks the
Payload and Scripts, `cksum` sums the files, xml.etree and plistlib parse the XML and plists,
the agent's own settings loader reads the profile's managed preferences, and
tests/packaging/bom_reader.py (written from the format's public description, importing
nothing from installers/macos) reads the Bom. Apple's installer, pkgutil, lsbom and launchctl
do not run on Linux: the scripts run here for real under `sh` with a recording stand-in for
launchctl (and for sleep) first on PATH, against a temporary folder as the target volume.
"""

from __future__ import annotations

import hashlib
import os
import plistlib
import re
import shutil
import stat
import struct
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from devposture.agent import cli as agent_cli
from devposture.agent import settings as agent_settings
from devposture.agent.probes.runner import PROBE_DEADLINE_SECONDS
from devposture.agent.state import platform_public_dir, platform_state_dir
from devposture.config_file import ConfigError
from tests.packaging import bom_reader
from tests.packaging.conftest import REPO, unavailable
from tests.packaging.native_bootloaders import bootloader

MACOS = REPO / "installers" / "macos"
BUILD = MACOS / "build_pkg.py"
MOBILECONFIG = MACOS / "mobileconfig.py"
EPOCH = 1_700_000_000
VERSION = "1.2.3"
COMPONENT = "devposture-agent.pkg"
IDENTIFIER = "com.devposture.agent.pkg"
LABEL = "com.devposture.agent"
PROGRAM_DIR = "./opt/devposture-agent/lib/devposture-agent"
MAIN = f"{PROGRAM_DIR}/devposture-agent"
LINK = "./opt/devposture-agent/bin/devposture-agent"
PLIST = "./Library/LaunchDaemons/com.devposture.agent.plist"
UNINSTALL = "./opt/devposture-agent/uninstall.sh"
TEAM = "ABCDE12345"
FINGERPRINT = "sha256:" + "ab" * 32
# The contract's code requirement (notes/issue16-contract.md), TEAMID filled in.
REQUIREMENT = (
    'identifier "com.devposture.agent" and anchor apple generic and certificate'
    " 1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate"
    " leaf[field.1.2.840.113635.100.6.1.13] /* exists */ and certificate leaf[subject.OU] ="
    f' "{TEAM}"'
)


def tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(
            f"the .pkg tests need {', '.join(missing)} (libarchive-tools, cpio, p7zip-full)"
        )


def run(argv: list[str | Path], env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                          env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), **(env or {})},
                          timeout=300)  # fmt: skip


def build(frozen: Path, out: Path, *, version: str = VERSION, epoch: int = EPOCH,
          ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return run([sys.executable, BUILD, "--frozen", frozen, "--version", version, "--out", out],
               env={"SOURCE_DATE_EPOCH": str(epoch)})  # fmt: skip


# --- the stand-in frozen folder and the package built from it --------------------------------


def make_frozen(folder: Path) -> Path:
    """A PyInstaller-shaped one-folder program: see the module's docstring."""
    folder.mkdir(parents=True)
    program = folder / "devposture-agent"
    shutil.copyfile(bootloader("macos"), program)
    program.chmod(0o755)
    internal = folder / "_internal"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "protos" / "devposture", internal / "devposture", ignore=ignore)
    shutil.copytree(
        REPO / "agent", internal / "devposture" / "agent", ignore=ignore, dirs_exist_ok=True
    )
    shutil.copytree(
        REPO / "collector", internal / "devposture" / "collector", ignore=ignore, dirs_exist_ok=True
    )
    docs = internal / "docs"
    docs.mkdir()
    shutil.copyfile(REPO / "README.md", docs / "Read me.md")
    shutil.copyfile(REPO / "docs" / "agent-configuration.md", docs / "代理 配置.md")
    (internal / "devposture" / "agent" / "__init__.py").chmod(0o666)  # loses group/other write
    (docs / "Read me.md").chmod(0o600)  # kept private
    framework = internal / "Python.framework"
    resources = framework / "Versions" / "3.11" / "Resources"
    resources.mkdir(parents=True)
    (resources / "Info.plist").write_bytes(
        plistlib.dumps(
            {"CFBundleIdentifier": "org.python.python", "CFBundleShortVersionString": "3.11"}
        )
    )
    (framework / "Versions" / "Current").symlink_to("3.11")
    (framework / "Resources").symlink_to("Versions/Current/Resources")
    return folder


def expected_payload(frozen: Path) -> dict[str, tuple[int, int, str]]:
    """cpio name -> (st_mode, size, link target) of every frozen path in the payload."""
    expected = {PROGRAM_DIR: (stat.S_IFDIR | 0o755, 0, "")}
    for path in sorted(frozen.rglob("*")):
        name = f"{PROGRAM_DIR}/{path.relative_to(frozen).as_posix()}"
        info = path.lstat()
        if path.is_symlink():
            target = os.readlink(path)
            expected[name] = (stat.S_IFLNK | 0o755, len(target.encode()), target)
        elif path.is_dir():
            expected[name] = (stat.S_IFDIR | (stat.S_IMODE(info.st_mode) & 0o755), 0, "")
        else:
            expected[name] = (stat.S_IFREG | (stat.S_IMODE(info.st_mode) & 0o755),
                              info.st_size, "")  # fmt: skip
    expected[MAIN] = (stat.S_IFREG | 0o755, (frozen / "devposture-agent").stat().st_size, "")
    return expected


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_frozen(tmp_path_factory.mktemp("frozen") / "devposture-agent")


@pytest.fixture(scope="module")
def pkg(frozen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tools("bsdtar", "cpio", "gzip", "cksum")
    out = tmp_path_factory.mktemp("dist") / f"devposture-agent-{VERSION}.pkg"
    done = build(frozen, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    return out


@pytest.fixture(scope="module")
def expanded(pkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product archive unpacked by bsdtar."""
    folder = tmp_path_factory.mktemp("expanded")
    done = run(["bsdtar", "-xf", pkg, "-C", folder])
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def installed(expanded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Payload unpacked by GNU cpio, as the installer would lay it on "/"."""
    return unpack(expanded / COMPONENT / "Payload", tmp_path_factory.mktemp("root"))


def unpack(archive: Path, into: Path) -> Path:
    data = gzip_d(archive)
    done = subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames", "-H", "odc"],
                          input=data, cwd=into, capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return into


def gzip_d(path: Path) -> bytes:
    done = subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True)
    return done.stdout


def cpio_listing(archive: Path) -> list[tuple[str, int, int, int, str, str]]:
    """`gzip -dc | cpio -itv -n` of an odc archive: (mode string, uid, gid, size, name,
    link target), in the archive's order."""
    done = subprocess.run(["cpio", "-itv", "-n", "--quiet", "-H", "odc"],
                          input=gzip_d(archive), capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = []
    for line in done.stdout.decode().splitlines():
        modes, _links, uid, gid, size, _month, _day, _year, name = line.split(maxsplit=8)
        name, _, target = name.partition(" -> ")
        rows.append((modes, int(uid), int(gid), int(size), name, target))
    return rows


def mode_string(st_mode: int) -> str:
    return stat.filemode(st_mode)


def xar_parts(pkg: Path) -> tuple[tuple[int, ...], bytes, bytes, bytes]:
    """(header fields, compressed TOC, TOC XML, heap) read with struct and zlib."""
    data = pkg.read_bytes()
    header = struct.unpack(">4sHHQQI", data[:28])
    _magic, size, _version, packed, _plain, _algorithm = header
    compressed = data[size : size + packed]
    return header[1:], compressed, zlib.decompress(compressed), data[size + packed :]


def toc_files(toc: bytes) -> dict[str, ET.Element]:
    """path inside the archive -> its <file> element."""
    found: dict[str, ET.Element] = {}

    def walk(element: ET.Element, prefix: str) -> None:
        for child in element.findall("file"):
            path = prefix + (child.findtext("name") or "")
            found[path] = child
            walk(child, path + "/")

    walk(ET.fromstring(toc).find("toc"), "")  # type: ignore[arg-type]
    return found


# --- the xar container ---------------------------------------------------------------------


def test_bsdtar_lists_the_product_archive(pkg: Path) -> None:
    done = run(["bsdtar", "-tf", pkg])
    assert done.returncode == 0, done.stderr
    assert sorted(line.rstrip("/") for line in done.stdout.splitlines()) == [
        "Distribution", COMPONENT, f"{COMPONENT}/Bom", f"{COMPONENT}/PackageInfo",
        f"{COMPONENT}/Payload", f"{COMPONENT}/Scripts",
    ]  # fmt: skip


def test_7zip_verifies_every_checksum(pkg: Path) -> None:
    tools("7z")
    done = run(["7z", "t", pkg])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Everything is Ok" in done.stdout


def test_toc_checksum_is_the_sha1_the_header_announces(pkg: Path) -> None:
    (size, version, packed, plain, algorithm), compressed, toc, heap = xar_parts(pkg)
    assert pkg.read_bytes()[:4] == b"xar!"
    assert (size, version, algorithm) == (28, 1, 1)  # 1: SHA-1
    assert (len(compressed), len(toc)) == (packed, plain)
    checksum = ET.fromstring(toc).find("toc/checksum")
    assert checksum is not None and checksum.get("style") == "sha1"
    at, length = int(checksum.findtext("offset") or -1), int(checksum.findtext("size") or -1)
    assert heap[at : at + length] == hashlib.sha1(compressed).digest()


def test_every_member_s_checksums_and_sizes(pkg: Path, expanded: Path) -> None:
    _, _, toc, heap = xar_parts(pkg)
    files = {path: e for path, e in toc_files(toc).items() if e.findtext("type") == "file"}
    assert len(files) == 5
    for path, element in files.items():
        data = element.find("data")
        assert data is not None
        offset, length = int(data.findtext("offset") or 0), int(data.findtext("length") or 0)
        stored = heap[offset : offset + length]
        plain = (expanded / path).read_bytes()
        assert hashlib.sha1(stored).hexdigest() == data.findtext("archived-checksum"), path
        assert hashlib.sha1(plain).hexdigest() == data.findtext("extracted-checksum"), path
        assert int(data.findtext("size") or -1) == len(plain)
        encoding = data.find("encoding")
        assert encoding is not None
        if path.endswith(("Payload", "Scripts")):  # already gzip: stored as they are
            assert encoding.get("style") == "application/octet-stream"
            assert stored == plain
        else:
            assert encoding.get("style") == "application/x-gzip"
            assert zlib.decompress(stored) == plain
        assert (element.findtext("uid"), element.findtext("gid")) == ("0", "0")
        assert element.findtext("mode") == "0644"


# --- the Payload ---------------------------------------------------------------------------


def test_payload_is_gzip_of_an_odc_cpio(expanded: Path) -> None:
    assert (expanded / COMPONENT / "Payload").read_bytes()[:2] == b"\x1f\x8b"
    assert gzip_d(expanded / COMPONENT / "Payload")[:6] == b"070707"


def test_payload_listing_holds_every_frozen_file_owned_by_root(expanded: Path,
                                                              frozen: Path) -> None:  # fmt: skip
    listing = cpio_listing(expanded / COMPONENT / "Payload")
    rows = {name: (modes, uid, gid, size) for modes, uid, gid, size, name, _t in listing}
    expected = expected_payload(frozen)
    for name, (st_mode, size, _target) in expected.items():
        assert name in rows, name
        modes, uid, gid, listed = rows[name]
        assert (modes, uid, gid) == (mode_string(st_mode), 0, 0), name
        if not modes.startswith("d"):
            assert listed == size, name
    assert rows[f"{PROGRAM_DIR}/_internal/devposture/agent/__init__.py"][0] == "-rw-r--r--"
    assert rows[f"{PROGRAM_DIR}/_internal/docs/Read me.md"][0] == "-rw-------"
    assert rows[f"{PROGRAM_DIR}/_internal/docs/代理 配置.md"][0] == "-rw-r--r--"


def test_payload_has_the_link_the_plist_the_uninstaller_and_nothing_else(
    expanded: Path, frozen: Path
) -> None:
    listing = cpio_listing(expanded / COMPONENT / "Payload")
    by_name = {name: (modes, uid, gid, target) for modes, uid, gid, _s, name, target in listing}
    assert by_name[LINK] == ("lrwxr-xr-x", 0, 0, "../lib/devposture-agent/devposture-agent")
    assert by_name[PLIST][:3] == ("-rw-r--r--", 0, 0)
    folders = {".", "./Library", "./Library/LaunchDaemons", "./opt", "./opt/devposture-agent",
               "./opt/devposture-agent/bin", "./opt/devposture-agent/lib"}  # fmt: skip
    assert set(by_name) == set(expected_payload(frozen)) | folders | {LINK, PLIST, UNINSTALL}
    assert by_name[UNINSTALL][:3] == ("-rwxr-xr-x", 0, 0)
    for folder in folders:
        assert by_name[folder][:3] == ("drwxr-xr-x", 0, 0), folder


def test_payload_lists_every_folder_before_its_contents(expanded: Path) -> None:
    names = [name for *_, name, _t in cpio_listing(expanded / COMPONENT / "Payload")]
    assert names[0] == "."
    seen = {"."}
    for name in names[1:]:
        assert name.rsplit("/", 1)[0] in seen, name
        seen.add(name)


def test_bsdtar_reads_the_payload_too(expanded: Path) -> None:
    done = run(["bsdtar", "-tvf", expanded / COMPONENT / "Payload"])
    assert done.returncode == 0, done.stderr
    assert f"{LINK} -> ../lib/devposture-agent/devposture-agent" in done.stdout


def test_unpacked_payload_is_the_frozen_folder_byte_for_byte(installed: Path,
                                                             frozen: Path) -> None:  # fmt: skip
    program = installed / PROGRAM_DIR
    for source in frozen.rglob("*"):
        copy = program / source.relative_to(frozen)
        if source.is_symlink():
            assert os.readlink(copy) == os.readlink(source)
        elif source.is_file():
            assert copy.read_bytes() == source.read_bytes(), source
            assert copy.stat().st_mtime == EPOCH  # (cpio -m dates folders as it makes them)
    link = installed / LINK
    assert link.resolve() == (program / "devposture-agent").resolve()
    assert link.read_bytes() == bootloader("macos").read_bytes()


# --- the Bom -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bom(expanded: Path) -> bom_reader.Bom:
    return bom_reader.read((expanded / COMPONENT / "Bom").read_bytes())


def test_bom_lists_exactly_the_payload_with_mode_owner_size(bom: bom_reader.Bom,
                                                           expanded: Path) -> None:  # fmt: skip
    listing = cpio_listing(expanded / COMPONENT / "Payload")
    assert set(bom.paths) == {name for *_, name, _t in listing}
    for modes, _uid, _gid, size, name, target in listing:
        entry = bom.paths[name]
        assert mode_string(entry.mode) == modes, name
        assert (entry.uid, entry.gid, entry.mtime) == (0, 0, EPOCH), name
        assert entry.kind == {"d": "dir", "-": "file", "l": "symlink"}[modes[0]], name
        assert entry.flags == 0x000F, name  # full metadata, as Apple's mkbom writes
        if entry.kind != "dir":
            assert entry.size == size, name
        if entry.kind == "symlink":
            assert entry.target == target, name


def test_bom_checksums_are_what_cksum_prints(bom: bom_reader.Bom, installed: Path) -> None:
    files = [p for p in bom.paths.values() if p.kind == "file"]
    done = run(["cksum", *[installed / p.path for p in files]])
    assert done.returncode == 0, done.stderr
    printed = {}
    for line in done.stdout.splitlines():
        crc, _size, name = line.split(" ", 2)
        printed[str(Path(name).relative_to(installed))] = int(crc)
    for path in files:
        assert path.checksum == printed[os.path.normpath(path.path)], path.path
    for path in (p for p in bom.paths.values() if p.kind == "symlink"):
        assert path.target is not None
        summed = subprocess.run(["cksum"], input=path.target.encode(), capture_output=True,
                                check=True).stdout.split()  # fmt: skip
        assert path.checksum == int(summed[0]), path.path


def test_bom_tree_and_counts(bom: bom_reader.Bom, expanded: Path) -> None:
    assert bom.paths["."].parent == 0 and bom.paths["."].id == 1
    for entry in bom.paths.values():
        if entry.path != ".":
            parent = bom.paths[entry.path.rsplit("/", 1)[0]]
            assert entry.parent == parent.id < entry.id
    # More paths than one 256-entry leaf: the branch page and the linked leaves are read.
    assert len(bom.paths) > 256 and bom.leaves >= 2
    assert bom.tree_pages == {"Paths": 4096, "HLIndex": 4096, "Size64": 4096, "VIndex tree": 128}
    assert bom.info_paths == len(bom.paths) + 1  # as Apple's mkbom counts
    files = sum(p.size for p in bom.paths.values() if p.kind != "dir")
    assert bom.info_entries == [(0, 0, files, 0)]
    info = ET.parse(expanded / COMPONENT / "PackageInfo").getroot().find("payload")
    assert info is not None
    assert int(info.get("numberOfFiles", -1)) == len(bom.paths)
    assert int(info.get("installKBytes", -1)) == (files + 1023) // 1024
    assert bom.vindex == (1, 0, 0)


# --- PackageInfo, Distribution, Scripts ----------------------------------------------------


def test_package_info(expanded: Path) -> None:
    root = ET.parse(expanded / COMPONENT / "PackageInfo").getroot()
    assert root.tag == "pkg-info"
    expected = {"identifier": IDENTIFIER, "version": VERSION, "install-location": "/",
                "auth": "root", "format-version": "2"}  # fmt: skip
    assert {key: root.get(key) for key in expected} == expected
    assert root.get("overwrite-permissions") is None  # /Library keeps the Mac's permissions
    scripts = root.find("scripts")
    assert scripts is not None
    assert [(s.tag, s.get("file")) for s in scripts] == [
        ("preinstall", "./preinstall"),
        ("postinstall", "./postinstall"),
    ]
    bundle = root.find("bundle-version")
    assert bundle is not None and len(bundle) == 0 and not (bundle.text or "").strip()


def test_distribution(expanded: Path) -> None:
    root = ET.parse(expanded / "Distribution").getroot()
    assert root.tag == "installer-gui-script"
    title = root.findtext("title") or ""
    assert "devposture agent" in title and "设备合规代理" in title
    options = root.find("options")
    assert options is not None
    assert options.get("hostArchitectures") == "x86_64,arm64"  # the universal stand-in's
    assert options.get("customize") == "never"
    domains = root.find("domains")
    assert domains is not None and domains.get("enable_localSystem") == "true"
    assert domains.get("enable_currentUserHome") == "false"
    assert domains.get("enable_anywhere") == "false"
    assert [e.get("min") for e in root.iter("os-version")] == ["11.0"]
    defining = [ref for ref in root.findall("pkg-ref") if (ref.text or "").strip()]
    assert len(defining) == 1
    assert defining[0].text == f"#{COMPONENT}"
    assert (defining[0].get("id"), defining[0].get("version")) == (IDENTIFIER, VERSION)
    assert {ref.get("id") for ref in root.iter("pkg-ref")} == {IDENTIFIER}
    lines = [line.get("choice") for line in root.iter("line")]
    choices = {c.get("id"): c for c in root.findall("choice")}
    assert lines and all(choice in choices for choice in lines)
    assert choices[lines[0]].find("pkg-ref") is not None


def test_scripts_archive_holds_both_scripts_executable(expanded: Path, tmp_path: Path) -> None:
    rows = cpio_listing(expanded / COMPONENT / "Scripts")
    assert [(m, u, g, n) for m, u, g, _s, n, _t in rows] == [
        ("drwxr-xr-x", 0, 0, "."), ("-rwxr-xr-x", 0, 0, "./postinstall"),
        ("-rwxr-xr-x", 0, 0, "./preinstall")]  # fmt: skip
    unpack(expanded / COMPONENT / "Scripts", tmp_path)
    for name in ("preinstall", "postinstall"):
        assert (tmp_path / name).read_bytes() == (MACOS / "scripts" / name).read_bytes()


# --- the launchd daemon --------------------------------------------------------------------


def test_launchd_plist_is_the_contract_s(installed: Path) -> None:
    with (installed / PLIST).open("rb") as stream:
        daemon = plistlib.load(stream)
    assert daemon == {
        "Label": LABEL,
        "ProgramArguments": ["/opt/devposture-agent/bin/devposture-agent", "run"],
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": 60,
        "ExitTimeOut": 90,
        "ProcessType": "Background",
        "StandardErrorPath": "/Library/Logs/devposture/agent.stderr.log",
    }
    assert plistlib.dumps(daemon, sort_keys=True) == (installed / PLIST).read_bytes()


def test_launchd_plist_agrees_with_the_agent_and_the_systemd_unit(installed: Path) -> None:
    with (installed / PLIST).open("rb") as stream:
        daemon = plistlib.load(stream)
    program, *arguments = daemon["ProgramArguments"]
    assert (installed / program.lstrip("/")).resolve() == (installed / MAIN).resolve()
    assert agent_cli.build_parser().parse_args(arguments).command == "run"
    unit = (REPO / "installers" / "linux" / "systemd" / "devposture-agent.service").read_text()
    stop = re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.MULTILINE)
    assert stop and daemon["ExitTimeOut"] == int(stop.group(1)) > PROBE_DEADLINE_SECONDS
    log = agent_settings.default_log_file("darwin")
    assert log is not None
    assert Path(daemon["StandardErrorPath"]).parent == log.parent


# --- the scripts, run for real against a temporary target volume --------------------------

FAKE_LAUNCHCTL = """#!/bin/sh
# Stands in for macOS's launchctl (which Linux has not): records its arguments and answers as
# the test asks (FAKE_LOADED: the daemon is loaded; FAKE_BOOTSTRAP_FAILS: failures before a
# bootstrap succeeds; FAKE_BOOTOUT_FAILS).
echo "launchctl $*" >> "$FAKE_LOG"
case "$1" in
  print) [ -n "$FAKE_LOADED" ] && exit 0
         echo "Could not find service \\"$2\\" in domain for system" >&2; exit 113 ;;
  bootout) [ -z "$FAKE_BOOTOUT_FAILS" ] && exit 0
           echo "Boot-out failed: 3: No such process" >&2; exit 3 ;;
  bootstrap)
    done=$(cat "$FAKE_LOG.bootstraps" 2>/dev/null || echo 0)
    echo $((done + 1)) > "$FAKE_LOG.bootstraps"
    if [ "$done" -lt "${FAKE_BOOTSTRAP_FAILS:-0}" ]; then
      echo "Bootstrap failed: 5: Input/output error" >&2; exit 5
    fi ;;
esac
exit 0
"""
FAKE_SLEEP = '#!/bin/sh\necho "sleep $*" >> "$FAKE_LOG"\n'
FAKE_CHOWN = '#!/bin/sh\necho "chown $*" >> "$FAKE_LOG"\n'  # only when the tests are not root
# macOS's /bin/sh is bash in POSIX mode (or dash, where an administrator chose it).
SHELLS = [s for s in ("dash", "bash --posix") if shutil.which(s.split()[0])]


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    folder = tmp_path / "fakebin"
    folder.mkdir()
    tools_ = {"launchctl": FAKE_LAUNCHCTL, "sleep": FAKE_SLEEP}
    if os.geteuid() != 0:
        tools_["chown"] = FAKE_CHOWN
    for name, text in tools_.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


@pytest.fixture
def volume(tmp_path: Path, expanded: Path) -> Path:
    """A target volume the payload was just installed onto."""
    root = tmp_path / "Volumes" / "Macintosh HD"
    root.mkdir(parents=True)
    return unpack(expanded / COMPONENT / "Payload", root)


def script(shell: str, name: str, target: str, fakes: Path, **env: str,
           ) -> tuple[subprocess.CompletedProcess[str], list[str]]:  # fmt: skip
    """Run scripts/NAME as the installer does (package, install location, target volume,
    startup disk); returns the run and the commands the fakes recorded."""
    log = fakes.parent / "calls.log"
    log.unlink(missing_ok=True)
    (fakes.parent / "calls.log.bootstraps").unlink(missing_ok=True)
    done = subprocess.run(
        [*shell.split(), str(MACOS / "scripts" / name), "/tmp/devposture-agent.pkg", "/", target,
         "/"],
        capture_output=True, text=True, check=False, timeout=60,
        env={"PATH": f"{fakes}:/usr/bin:/bin", "FAKE_LOG": str(log), **env},
    )  # fmt: skip
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def launchctl(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith(("launchctl ", "sleep "))]


@pytest.mark.parametrize("name", ["preinstall", "postinstall"])
@pytest.mark.parametrize("shell", SHELLS)
def test_scripts_parse_under_posix_sh(shell: str, name: str) -> None:
    path = MACOS / "scripts" / name
    assert path.read_text().startswith("#!/bin/sh\n")
    assert "\nset -e\n" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    done = run([*shell.split(), "-n", path])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_postinstall_on_another_volume_makes_the_folders_and_starts_nothing(
    shell: str, volume: Path, fakes: Path,
) -> None:  # fmt: skip
    (volume / PLIST).chmod(0o600)
    done, calls = script(shell, "postinstall", str(volume), fakes, FAKE_LOADED="1")
    assert done.returncode == 0, done.stderr
    assert launchctl(calls) == []
    config = volume / agent_settings.config_folder("darwin").relative_to("/")
    state = volume / platform_state_dir("darwin").relative_to("/")
    public = volume / platform_public_dir("darwin").relative_to("/")
    log = agent_settings.default_log_file("darwin")
    assert log is not None
    logs = volume / log.parent.relative_to("/")
    for folder, mode in ((config, 0o755), (state, 0o700), (public, 0o755), (logs, 0o755)):
        assert folder.is_dir(), folder
        assert stat.S_IMODE(folder.stat().st_mode) == mode, folder
        if os.geteuid() == 0:
            assert (folder.stat().st_uid, folder.stat().st_gid) == (0, 0)
        else:
            assert f"chown 0:0 {folder}" in calls
    assert stat.S_IMODE((volume / PLIST).stat().st_mode) == 0o644


@pytest.mark.parametrize("shell", SHELLS)
def test_postinstall_never_touches_an_existing_configuration(shell: str, volume: Path,
                                                             fakes: Path) -> None:  # fmt: skip
    config = volume / "Library" / "Application Support" / "devposture"
    (config / "state").mkdir(parents=True)
    config.chmod(0o750)
    (config / "state").chmod(0o700)
    (config / "agent.toml").write_text('[collector]\naddresses = ["c.corp.example:7443"]\n')
    (config / "state" / "identity.json").write_text("{}")
    before = {p: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
              for p in config.rglob("*")}  # fmt: skip
    done, _calls = script(shell, "postinstall", str(volume), fakes)
    assert done.returncode == 0, done.stderr
    # Only the folder of what `status` shows is new (an install from before it had none).
    public = volume / platform_public_dir("darwin").relative_to("/")
    assert stat.S_IMODE(public.stat().st_mode) == 0o755
    assert {p: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in config.rglob("*") if p != public} == before  # fmt: skip
    assert stat.S_IMODE(config.stat().st_mode) == 0o750


@pytest.mark.skipif(os.geteuid() != 0, reason="giving folders to another user needs root")
@pytest.mark.parametrize("shell", SHELLS)
def test_postinstall_takes_back_existing_folders_left_open(shell: str, volume: Path,
                                                          fakes: Path) -> None:  # fmt: skip
    """Folders an old install, a restored backup or a hand left another user's, or writable by
    all: the daemon runs as root and trusts agent.toml, the enrollment file and the pinned CA
    in them. They become root's and writable by root only, the state private; what is in
    them stays as it was."""
    config = volume / agent_settings.config_folder("darwin").relative_to("/")
    state = volume / platform_state_dir("darwin").relative_to("/")
    public = volume / platform_public_dir("darwin").relative_to("/")
    log = agent_settings.default_log_file("darwin")
    assert log is not None
    logs = volume / log.parent.relative_to("/")
    files = {config / "agent.toml": b'[collector]\naddresses = ["c.corp.example:7443"]\n',
             state / "identity.json": b"{}", public / "status.json": b"{}",
             logs / "agent.log": b"a line\n"}  # fmt: skip
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for folder in (config, state, public, logs):
        folder.chmod(0o777)
        os.chown(folder, 501, 20)  # the Mac's first user, group staff
    done, _calls = script(shell, "postinstall", str(volume), fakes)
    assert done.returncode == 0, done.stderr
    for folder, mode in ((config, 0o755), (state, 0o700), (public, 0o755), (logs, 0o755)):
        st = folder.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, mode), folder
    assert {path: path.read_bytes() for path in files} == files


@pytest.mark.parametrize("shell", SHELLS)
def test_postinstall_on_the_running_system_enables_and_bootstraps(shell: str, volume: Path,
                                                                  fakes: Path) -> None:  # fmt: skip
    done, calls = script(shell, "postinstall", "/", fakes, DEVPOSTURE_PKG_TEST_ROOT=str(volume))
    assert done.returncode == 0, done.stderr
    assert launchctl(calls) == [
        f"launchctl enable system/{LABEL}",
        f"launchctl print system/{LABEL}",
        f"launchctl bootstrap system {volume}/Library/LaunchDaemons/{LABEL}.plist",
    ]
    assert (volume / "Library" / "Logs" / "devposture").is_dir()


@pytest.mark.parametrize("shell", SHELLS)
def test_postinstall_restarts_a_daemon_still_loaded(shell: str, volume: Path,
                                                    fakes: Path) -> None:  # fmt: skip
    done, calls = script(shell, "postinstall", "/", fakes, DEVPOSTURE_PKG_TEST_ROOT=str(volume),
                         FAKE_LOADED="1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert launchctl(calls) == [
        f"launchctl enable system/{LABEL}",
        f"launchctl print system/{LABEL}",
        f"launchctl kickstart -k system/{LABEL}",
    ]


@pytest.mark.parametrize("shell", SHELLS)
def test_postinstall_retries_bootstrap_while_the_old_daemon_exits(shell: str, volume: Path,
                                                                  fakes: Path) -> None:  # fmt: skip
    done, calls = script(shell, "postinstall", "/", fakes, DEVPOSTURE_PKG_TEST_ROOT=str(volume),
                         FAKE_BOOTSTRAP_FAILS="2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    bootstrap = f"launchctl bootstrap system {volume}/Library/LaunchDaemons/{LABEL}.plist"
    assert launchctl(calls)[2:] == [bootstrap, "sleep 1", bootstrap, "sleep 1", bootstrap]


def test_postinstall_gives_up_on_a_bootstrap_that_keeps_failing(volume: Path,
                                                                fakes: Path) -> None:  # fmt: skip
    done, calls = script("sh", "postinstall", "/", fakes, DEVPOSTURE_PKG_TEST_ROOT=str(volume),
                         FAKE_BOOTSTRAP_FAILS="1000")  # fmt: skip
    assert done.returncode != 0
    assert "launchctl bootstrap system" in done.stderr and "failed 100 times" in done.stderr
    assert sum(c.startswith("launchctl bootstrap") for c in calls) == 100


def test_postinstall_fails_without_the_payload_s_plist(volume: Path, fakes: Path) -> None:
    (volume / PLIST).unlink()
    done, calls = script("sh", "postinstall", str(volume), fakes)
    assert done.returncode == 1
    assert "com.devposture.agent.plist is missing" in done.stderr
    assert launchctl(calls) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_preinstall_stops_a_loaded_daemon_on_the_running_system(shell: str, fakes: Path) -> None:
    done, calls = script(shell, "preinstall", "/", fakes, FAKE_LOADED="1")
    assert done.returncode == 0, done.stderr
    assert launchctl(calls) == [f"launchctl print system/{LABEL}",
                                f"launchctl bootout system/{LABEL}"]  # fmt: skip
    done, calls = script(shell, "preinstall", "/", fakes, FAKE_LOADED="1", FAKE_BOOTOUT_FAILS="1")
    assert done.returncode == 0, done.stderr  # "not loaded" does not fail the installation
    assert launchctl(calls)[-1] == f"launchctl bootout system/{LABEL}"


@pytest.mark.parametrize("shell", SHELLS)
def test_preinstall_leaves_alone_what_is_not_loaded_or_not_this_system(
    shell: str, volume: Path, fakes: Path,
) -> None:  # fmt: skip
    done, calls = script(shell, "preinstall", "/", fakes)
    assert done.returncode == 0, done.stderr
    assert launchctl(calls) == [f"launchctl print system/{LABEL}"]
    done, calls = script(shell, "preinstall", str(volume), fakes, FAKE_LOADED="1")
    assert done.returncode == 0, done.stderr
    assert launchctl(calls) == []


# --- the builder's refusals and its output's reproducibility -------------------------------


def test_same_input_gives_the_same_bytes(pkg: Path, frozen: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.pkg"
    assert build(frozen, again).returncode == 0
    assert again.read_bytes() == pkg.read_bytes()
    later = tmp_path / "later.pkg"
    assert build(frozen, later, epoch=EPOCH + 86400).returncode == 0
    assert later.read_bytes() != pkg.read_bytes()  # the dates are the given ones


def slice_of(universal: Path, cpu: int) -> bytes:
    """One architecture's thin Mach-O out of a universal binary (its fat header is read
    here with struct: big-endian count, then cputype, subtype, offset, size, align)."""
    data = universal.read_bytes()
    magic, count = struct.unpack_from(">II", data)
    assert magic == 0xCAFEBABE
    for index in range(count):
        cputype, _sub, offset, size, _align = struct.unpack_from(">iIIII", data, 8 + 20 * index)
        if cputype == cpu:
            return data[offset : offset + size]
    raise AssertionError(f"no slice {cpu:#x} in {universal}")


def test_a_thin_x86_64_program_is_accepted_and_made_executable(frozen: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    thin = tmp_path / "devposture-agent"
    shutil.copytree(frozen, thin, symlinks=True)
    (thin / "devposture-agent").write_bytes(slice_of(frozen / "devposture-agent", 0x01000007))
    (thin / "devposture-agent").chmod(0o644)  # as an unzipped build artefact has it
    out = tmp_path / "thin.pkg"
    done = build(thin, out)
    assert done.returncode == 0, done.stderr
    expanded = tmp_path / "x"
    expanded.mkdir()
    assert run(["bsdtar", "-xf", out, "-C", expanded]).returncode == 0
    options = ET.parse(expanded / "Distribution").getroot().find("options")
    assert options is not None and options.get("hostArchitectures") == "x86_64"
    rows = {n: m for m, _u, _g, _s, n, _t in cpio_listing(expanded / COMPONENT / "Payload")}
    assert rows[MAIN] == "-rwxr-xr-x"


@pytest.mark.parametrize(("kind", "problem"), [
    ("windows", "is a Windows program (PE"),
    ("linux", "is a Linux program (ELF)"),
    ("script", "is a script"),
])  # fmt: skip
def test_a_program_not_for_the_mac_is_refused(kind: str, problem: str, frozen: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    wrong = tmp_path / "devposture-agent"
    shutil.copytree(frozen, wrong, symlinks=True)
    program = wrong / "devposture-agent"
    if kind == "windows":
        shutil.copyfile(bootloader("windows"), program)
    elif kind == "linux":
        shutil.copyfile(Path(sys.executable).resolve(), program)
    else:
        program.write_text("#!/bin/sh\necho placeholder\n")
    out = tmp_path / "wrong.pkg"
    done = build(wrong, out)
    assert done.returncode == 1
    assert problem in done.stderr
    assert "freeze the agent on a macOS build machine" in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("target", ["/usr/lib/libSystem.B.dylib", "../../outside"])
def test_a_link_leading_out_of_the_frozen_folder_is_refused(target: str, frozen: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    copy = tmp_path / "devposture-agent"
    shutil.copytree(frozen, copy, symlinks=True)
    (copy / "_internal" / "libSystem.dylib").symlink_to(target)
    out = tmp_path / "x.pkg"
    done = build(copy, out)
    assert done.returncode == 1
    assert f"-> {target} leads out of the frozen folder" in done.stderr
    assert not out.exists()


def test_a_folder_without_internal_is_refused(frozen: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(frozen / "devposture-agent", alone / "devposture-agent")
    done = build(alone, tmp_path / "x.pkg")
    assert done.returncode == 1
    assert "no _internal/" in done.stderr


# --- the MDM profile -----------------------------------------------------------------------


def profile(tmp_path: Path, *options: str, name: str = "p.mobileconfig",
            ) -> tuple[subprocess.CompletedProcess[str], Path]:  # fmt: skip
    out = tmp_path / name
    return run([sys.executable, MOBILECONFIG, *options, "--out", out]), out


FULL = (
    "--team-id",
    TEAM,
    "--collector",
    "collector.corp.example:7443,[fd00::5]:7443",
    "--collector",
    "backup.corp.example:7443",
    "--ca-fingerprint",
    FINGERPRINT.upper(),
    "--https-proxy",
    "http://proxy.corp.example:3128",
    "--log-level",
    "info",
    "--backup-folder",
    "~/Documents/微信备份",
    "--backup-folder",
    "/Users/Shared/WeChat",
)


@pytest.fixture(scope="module")
def mobileconfig(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    done, out = profile(tmp_path_factory.mktemp("profile"), *FULL)
    assert done.returncode == 0, done.stderr
    with out.open("rb") as stream:
        loaded = plistlib.load(stream)
    assert isinstance(loaded, dict)
    return loaded


def payloads(whole: dict[str, object]) -> dict[str, dict[str, object]]:
    content = whole["PayloadContent"]
    assert isinstance(content, list)
    return {str(p["PayloadType"]): p for p in content}


def test_profile_is_a_system_configuration_with_two_payloads(mobileconfig: dict[str, object],
                                                             ) -> None:  # fmt: skip
    assert mobileconfig["PayloadType"] == "Configuration"
    assert mobileconfig["PayloadScope"] == "System"
    assert mobileconfig["PayloadIdentifier"] == "com.devposture.agent.profile"
    assert mobileconfig["PayloadVersion"] == 1
    assert "设备合规代理" in str(mobileconfig["PayloadDisplayName"])
    inner = payloads(mobileconfig)
    assert set(inner) == {"com.devposture.agent", "com.apple.TCC.configuration-profile-policy"}
    uuids = [str(mobileconfig["PayloadUUID"])] + [str(p["PayloadUUID"]) for p in inner.values()]
    assert len(set(uuids)) == 3
    for text in uuids:
        assert str(uuid.UUID(text)).upper() == text
    identifiers = [str(p["PayloadIdentifier"]) for p in inner.values()]
    assert len(set(identifiers)) == 2
    assert all(i.startswith("com.devposture.agent.profile.") for i in identifiers)


def test_profile_managed_preferences_hold_the_given_settings(mobileconfig: dict[str, object],
                                                             ) -> None:  # fmt: skip
    settings = {k: v for k, v in payloads(mobileconfig)["com.devposture.agent"].items()
                if not k.startswith("Payload")}  # fmt: skip
    assert settings == {
        "collector": {"addresses": ["collector.corp.example:7443", "[fd00::5]:7443",
                                    "backup.corp.example:7443"],
                      "ca_fingerprint": FINGERPRINT},
        "network": {"https_proxy": "http://proxy.corp.example:3128"},
        "logging": {"level": "info"},
        "backups": {"folders": ["~/Documents/微信备份", "/Users/Shared/WeChat"]},
    }  # fmt: skip


def test_the_agent_reads_the_profile_s_managed_preferences(mobileconfig: dict[str, object],
                                                           tmp_path: Path) -> None:  # fmt: skip
    """macOS writes the payload to /Library/Managed Preferences/com.devposture.agent.plist;
    the agent's own loader reads that file here."""
    managed = tmp_path / "com.devposture.agent.plist"
    managed.write_bytes(plistlib.dumps(payloads(mobileconfig)["com.devposture.agent"]))
    loaded = agent_settings.load(environ={}, platform="darwin", managed_preferences=managed)
    assert [a.target() for a in loaded.collectors] == [
        "collector.corp.example:7443",
        "[fd00::5]:7443",
        "backup.corp.example:7443",
    ]
    assert loaded.ca_fingerprint == FINGERPRINT
    assert loaded.https_proxy is not None
    assert loaded.log_level == "info"
    assert loaded.backup_folders == ("~/Documents/微信备份", "/Users/Shared/WeChat")
    assert loaded.origins["collectors"] != "default"


def test_profile_grants_full_disk_access_to_the_packaged_program(
    mobileconfig: dict[str, object], expanded: Path,
) -> None:  # fmt: skip
    policy = payloads(mobileconfig)["com.apple.TCC.configuration-profile-policy"]
    services = policy["Services"]
    assert isinstance(services, dict) and list(services) == ["SystemPolicyAllFiles"]
    (grant,) = services["SystemPolicyAllFiles"]
    assert grant == {
        "Identifier": "/opt/devposture-agent/lib/devposture-agent/devposture-agent",
        "IdentifierType": "path",
        "CodeRequirement": REQUIREMENT,
        "Allowed": True,
        "Authorization": "Allow",
        "StaticCode": False,
        "Comment": grant["Comment"],
    }
    assert "WeChat" in grant["Comment"]
    names = {n for *_, n, _t in cpio_listing(expanded / COMPONENT / "Payload")}
    assert "." + grant["Identifier"] in names  # the program the package installs


def test_profile_holds_only_what_is_given(tmp_path: Path) -> None:
    done, out = profile(tmp_path, "--team-id", TEAM, "--collector", "c.corp.example:7443")
    assert done.returncode == 0, done.stderr
    with out.open("rb") as stream:
        inner = payloads(plistlib.load(stream))
    settings = {k: v for k, v in inner["com.devposture.agent"].items()
                if not k.startswith("Payload")}  # fmt: skip
    assert settings == {"collector": {"addresses": ["c.corp.example:7443"]}}


def test_profile_with_the_team_id_alone_is_a_template(tmp_path: Path) -> None:
    """What the native-installers workflow makes: Full Disk Access, and managed preferences
    IT fills in in its MDM (or leaves to agent.toml)."""
    done, out = profile(tmp_path, "--team-id", TEAM)
    assert done.returncode == 0, done.stderr
    assert "managed preferences are empty" in done.stderr
    with out.open("rb") as stream:
        inner = payloads(plistlib.load(stream))
    assert set(inner) == {"com.devposture.agent", "com.apple.TCC.configuration-profile-policy"}
    assert all(k.startswith("Payload") for k in inner["com.devposture.agent"])
    managed = tmp_path / "managed.plist"
    managed.write_bytes(plistlib.dumps(inner["com.devposture.agent"]))
    loaded = agent_settings.load(environ={}, platform="darwin", managed_preferences=managed)
    assert loaded.collectors == ()


def test_profile_is_reproducible_and_its_uuids_follow_its_contents(tmp_path: Path) -> None:
    first, a = profile(tmp_path, *FULL, name="a")
    second, b = profile(tmp_path, *FULL, name="b")
    third, c = profile(tmp_path, *FULL[:-1], "/Users/Shared/Other", name="c")
    assert first.returncode == second.returncode == third.returncode == 0
    assert a.read_bytes() == b.read_bytes()
    one, other = plistlib.loads(a.read_bytes()), plistlib.loads(c.read_bytes())
    assert one["PayloadIdentifier"] == other["PayloadIdentifier"]
    assert one["PayloadUUID"] != other["PayloadUUID"]


@pytest.mark.parametrize("team", ["abcde12345", "ABCDE1234", "ABCDE123456", "ABCDE-1234", ""])
def test_profile_refuses_a_bad_team_id(team: str, tmp_path: Path) -> None:
    done, out = profile(tmp_path, "--team-id", team, "--collector", "c.corp.example:7443")
    assert done.returncode == 1
    assert "is not an Apple Developer team id" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(("option", "value", "message", "section", "key"), [
    ("--collector", "collector.corp.example", "is not HOST:PORT", "collector", "addresses"),
    ("--ca-fingerprint", "sha256:abc", "64 hexadecimal digits", "collector", "ca_fingerprint"),
    ("--https-proxy", "https://proxy:3128", "must be http://HOST:PORT", "network", "https_proxy"),
    ("--backup-folder", "Documents", "must be an absolute path", "backups", "folders"),
])  # fmt: skip
def test_profile_refuses_a_setting_the_agent_would_refuse(
    option: str, value: str, message: str, section: str, key: str, tmp_path: Path,
) -> None:  # fmt: skip
    base = ["--team-id", TEAM, "--collector", "c.corp.example:7443"]
    done, out = profile(tmp_path, *base, option, value)
    assert done.returncode == 1
    assert message in done.stderr
    assert not out.exists()
    # The agent refuses the same value in its managed preferences.
    table: dict[str, dict[str, object]] = {"collector": {"addresses": ["c.corp.example:7443"]}}
    table.setdefault(section, {})[key] = [value] if key in ("addresses", "folders") else value
    managed = tmp_path / "managed.plist"
    managed.write_bytes(plistlib.dumps(table))
    with pytest.raises(ConfigError):
        agent_settings.load(environ={}, platform="darwin", managed_preferences=managed)
