"""What freezing does differently on Linux, Windows and macOS: freeze/devposture.spec and
freeze.py ask here, the tests read it as data (tests/packaging/test_native_workflow.py).

PyInstaller freezes for the system it runs on, so `for_system(sys.platform, os.environ)` is
asked on that system: Debian for the .deb and .rpm, a Windows runner for the MSI, a macOS
runner for the .pkg (.github/workflows/native-installers.yml).

* Linux: stripped; libstdc++ and libgcc_s left to the system, as manylinux wheels do (the build
  machine's copies need a newer glibc than the rest of the bundle; every distribution has its
  own). Nothing here changes what the Linux packages carry.
* Windows: `devposture-agent.exe` with a version resource (file and product version = the
  agent's, product "devposture agent", company "devposture"), written at build time for
  PyInstaller's `version=`. Not stripped (no strip tool; PE files carry no debug symbols to
  drop). A console program: the service control manager starts `devposture-agent.exe service`
  (a service has no window either way), the MSI's custom actions run `setup` and `cleanup`
  and read their exit code, and IT runs `collect --json` or `status` in a terminal; a windowed
  build has no standard streams at all, so none of those would print anything.
* macOS: stripped of debug symbols (PyInstaller runs `strip -S`), built for arm64, and signed.
  arm64 because the locked wheels are not universal2: cryptography 50.0.2 publishes macOS
  wheels for arm64 only (none for x86_64, none universal2), cffi 2.1.1 and psutil 7.2.2 have
  arm64 and x86_64 wheels but no universal2 (grpcio, protobuf and watchdog do). The build
  machine is Apple silicon (macos-14); an Intel Mac is not a target of this lock.
  PyInstaller signs every collected binary and the program with `codesign_identity` (a
  Developer ID from DEVPOSTURE_CODESIGN_IDENTITY, with the hardened runtime; ad hoc when
  unset) and `entitlements_file` (DEVPOSTURE_ENTITLEMENTS_FILE, optional). PyInstaller has no
  option for the code signing identifier of a bare executable (`osx_bundle_identifier` is
  BUNDLE()'s, for .app bundles only, and its codesign call passes no `--identifier`), so codesign
  would name the program after its file, "devposture-agent". The PPPC profile grants Full Disk
  Access to the identifier `com.devposture.agent`, so freeze.py signs the program once more
  with `resign_command()`: `codesign --force --identifier com.devposture.agent ...`, and checks
  what `codesign --display` then reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

IDENTIFIER = "com.devposture.agent"
COMPANY = "devposture"
PRODUCT = "devposture agent"
MACOS_ARCH = "arm64"
LINUX_SYSTEM_LIBRARIES = ("libstdc++.so", "libgcc_s.so")
IDENTITY_VARIABLE = "DEVPOSTURE_CODESIGN_IDENTITY"
ENTITLEMENTS_VARIABLE = "DEVPOSTURE_ENTITLEMENTS_FILE"
SYSTEMS = ("linux", "win32", "darwin")


@dataclass(frozen=True)
class Choices:
    """PyInstaller's EXE and COLLECT options, and the spec's own, for one system."""

    system: str
    strip: bool
    # Library file names (prefixes) PyInstaller found but the frozen folder leaves out.
    system_libraries: tuple[str, ...]
    # macOS only: PyInstaller's target_arch, codesign_identity (None: ad hoc), entitlements_file.
    target_arch: str | None
    codesign_identity: str | None
    entitlements_file: str | None
    # Windows only: write a version resource and pass it as EXE(version=...).
    version_resource: bool
    console: bool = True

    def executable(self, program: str) -> str:
        """The main program's file name in the frozen folder."""
        return f"{program}.exe" if self.system == "win32" else program


def for_system(system: str, environ: Mapping[str, str]) -> Choices:
    """The choices for `system` (sys.platform: "linux", "win32", "darwin")."""
    if system == "linux":
        return Choices(system, strip=True, system_libraries=LINUX_SYSTEM_LIBRARIES,
                       target_arch=None, codesign_identity=None, entitlements_file=None,
                       version_resource=False)  # fmt: skip
    if system == "win32":
        return Choices(system, strip=False, system_libraries=(), target_arch=None,
                       codesign_identity=None, entitlements_file=None,
                       version_resource=True)  # fmt: skip
    if system == "darwin":
        return Choices(system, strip=True, system_libraries=(), target_arch=MACOS_ARCH,
                       codesign_identity=environ.get(IDENTITY_VARIABLE) or None,
                       entitlements_file=environ.get(ENTITLEMENTS_VARIABLE) or None,
                       version_resource=False)  # fmt: skip
    raise ValueError(f"devposture is frozen on {', '.join(SYSTEMS)}, not on {system!r}")


def resign_command(executable: str, choices: Choices) -> list[str]:
    """codesign's command line that gives the macOS program the identifier the PPPC profile
    names, signed as PyInstaller signed it: the same identity (hardened runtime and a secure
    timestamp with a real one, which notarization requires) and entitlements."""
    if choices.system != "darwin":
        raise ValueError("only a macOS program is signed by freeze.py")
    command = ["/usr/bin/codesign", "--force", "--all-architectures", "--identifier", IDENTIFIER]
    if choices.codesign_identity:
        command += ["--sign", choices.codesign_identity, "--options", "runtime", "--timestamp"]
    else:
        command += ["--sign", "-"]  # ad hoc: no certificate, so no timestamp either
    if choices.entitlements_file:
        command += ["--entitlements", choices.entitlements_file]
    return [*command, executable]


def version_numbers(version: str) -> tuple[int, int, int, int]:
    """The four numbers of a Windows file version from a PEP 440 version ("1.2.3" -> 1.2.3.0;
    "1.2.3rc1" -> 1.2.3.0, the full text stays in the FileVersion string)."""
    release = re.match(r"\d+(?:\.\d+)*", version)
    if release is None:
        raise ValueError(f"version {version!r} does not start with a number, as Windows needs")
    parts = [int(part) for part in release.group(0).split(".")]
    if len(parts) > 4 or any(part > 0xFFFF for part in parts):
        raise ValueError(f"version {version!r}: Windows takes at most four numbers of at most"
                         " 65535 each")  # fmt: skip
    major, minor, micro, build = (*parts, 0, 0, 0)[:4]
    return major, minor, micro, build


def windows_version_info(program: str, version: str) -> str:
    """PyInstaller's version file (`EXE(version=...)`, read by eval() in its versioninfo
    module) for `program` at `version`."""
    numbers = version_numbers(version)
    strings = [
        ("CompanyName", COMPANY),
        ("FileDescription", PRODUCT),
        ("FileVersion", version),
        ("InternalName", program),
        ("OriginalFilename", f"{program}.exe"),
        ("ProductName", PRODUCT),
        ("ProductVersion", version),
    ]
    table = ",\n".join(f"          StringStruct({key!r}, {value!r})" for key, value in strings)
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(
    filevers={numbers!r},
    prodvers={numbers!r},
    mask=0x3f,
    flags=0x0,
    OS=0x40004,
    fileType=0x1,
    subtype=0x0,
    date=(0, 0)
  ),
  kids=[
    StringFileInfo([
      StringTable('040904B0', [
{table}
      ])
    ]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""
