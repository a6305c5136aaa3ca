"""The WiX source of the agent's MSI, generated from the frozen folder (for wixl 0.101).

Everything the installers contract (/work/notes/issue16-contract.md, Windows) fixes lives here
as a constant: names, the upgrade code, the service, the public properties, the two custom
actions' command lines, the registry values. `scan` reads the frozen folder (PyInstaller's
one-folder output: devposture-agent.exe and _internal/) and refuses what Windows or an MSI
cannot hold; `source` turns it into WiX XML with xml.etree (every path escaped by the XML
writer and, for wixl's preprocessor, every "$" written as a variable), in a stable order, so
the same folder and version give byte-identical source.

Identity that must not change between builds is derived, never random:
- component GUIDs: uuid5 of the upgrade code and the file's relative path (lower case: Windows
  paths are case-insensitive), so a file at the same path keeps its component across versions;
- the product code: uuid5 of the upgrade code and the version, so every version has its own
  (what a major upgrade needs) and a rebuild of one version is recognised as that product.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# --- fixed by the contract -------------------------------------------------------------------
UPGRADE_CODE = "{313A564B-8067-4F2C-B478-9C5999A27108}"
MANUFACTURER = "devposture"
PRODUCT_NAME = "devposture agent"
MAIN_EXE = "devposture-agent.exe"
VENDOR_FOLDER = "devposture"
PROGRAM_FOLDER = "agent"
INSTALL_ROOT = "C:\\Program Files\\devposture\\agent\\"  # for the path length check only
SERVICE_NAME = "devposture-agent"
SERVICE_DISPLAY_NAME = "devposture agent"
SERVICE_DESCRIPTION = (
    "设备合规代理 devposture: reports antivirus, firewall, updates, Wi-Fi and chat-backup state "
    "to the company's collector"
)
SERVICE_ARGUMENTS = "service"
PUBLIC_PROPERTIES = ("COLLECTOR", "ENROLLMENT_FILE", "CA_FINGERPRINT", "HTTPS_PROXY", "PURGE")
SETUP_COMMAND = (
    'setup --installer msi "--collector=[COLLECTOR]" "--enrollment-file=[ENROLLMENT_FILE]" '
    '"--ca-fingerprint=[CA_FINGERPRINT]" "--https-proxy=[HTTPS_PROXY]"'
)
CLEANUP_COMMAND = 'cleanup --installer msi "--purge=[PURGE]"'
SETUP_CONDITION = 'NOT REMOVE~="ALL"'
CLEANUP_CONDITION = 'REMOVE~="ALL" AND NOT UPGRADINGPRODUCTCODE'
REGISTRY_KEY = "SOFTWARE\\devposture\\agent"

# --- chosen here ------------------------------------------------------------------------------
# The tables' code page. Windows Installer converts every table string from it to Unicode; the
# service description and any file name may hold Chinese, which code page 936 (GBK, simplified
# Chinese, valid on every Windows) can hold. UTF-8 (65001) is not officially supported.
CODEPAGE = 936
CODEC = "gbk"
INSTALLER_VERSION = "500"  # Windows Installer 5.0: Windows 7 / Server 2008 R2 and later
LANGUAGE = "1033"
MAIN_FILE_ID = "AgentExe"
MAIN_COMPONENT_ID = "AgentProgram"
REGISTRY_COMPONENT_ID = "AgentRegistry"
SERVICE_ID = "AgentService"
SETUP_ACTION = "DevpostureSetup"
CLEANUP_ACTION = "DevpostureCleanup"
# An upgrade installs where the installed version is (INSTALLDIR given at its install),
# read back from its InstallFolder value, unless INSTALLDIR is given again.
SAVED_FOLDER_PROPERTY = "DEVPOSTURE_SAVED_INSTALLDIR"
SAVED_FOLDER_SEARCH_ID = "DevpostureSavedFolder"
SAVED_FOLDER_ACTION = "DevpostureUseSavedFolder"
SAVED_FOLDER_CONDITION = f"{SAVED_FOLDER_PROPERTY} AND NOT INSTALLDIR"
FEATURE_ID = "Agent"
# Where the actions go in InstallExecuteSequence, between the standard actions' numbers
# (InstallValidate 1400, InstallInitialize 1500, StopServices 1900, RemoveFiles 3500,
# InstallServices 5800, StartServices 5900). Numbers, not After/Before: wixl 0.101 places an
# After/Before action by walking a pointer-keyed hash table, so its number changes from build
# to build (the cleanup landed at 1901 or 2601).
SEQUENCE = {
    SAVED_FOLDER_ACTION: 990,  # after AppSearch (50), before CostFinalize (1000) resolves it
    "RemoveExistingProducts": 1401,  # MajorUpgrade's place: the old version goes first
    CLEANUP_ACTION: 1901,  # after StopServices, before RemoveFiles
    SETUP_ACTION: 5801,  # after InstallServices, before StartServices
}
# Windows 10 and Server 2016 report VersionNT 603 to Windows Installer, as Windows 8.1 does
# (without a manifest msiexec sees 6.3), and WindowsBuild 9600: only the registry's build
# number tells them apart. 10240 is Windows 10's first build; Server 2016 is 14393.
BUILD_PROPERTY = "DEVPOSTURE_WINDOWS_BUILD"
BUILD_SEARCH_ID = "DevpostureWindowsBuild"
WINDOWS_KEY = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
MIN_WINDOWS_BUILD = 10240
SYSTEM_CONDITION = f"Installed OR (VersionNT64 >= 603 AND {BUILD_PROPERTY} >= {MIN_WINDOWS_BUILD})"
MESSAGES = {
    "Privileged": (
        "安装 devposture agent 需要管理员权限。/ Installing devposture agent needs administrator "
        "rights: run msiexec from an elevated prompt, or deploy it with Group Policy, Intune or "
        "SCCM."
    ),
    SYSTEM_CONDITION: (
        "devposture agent 需要 64 位 Windows 10 或 Windows Server 2016 及更新版本。/ devposture "
        "agent needs 64-bit Windows 10 or Windows Server 2016 or newer."
    ),
}
DOWNGRADE_MESSAGE = (
    "已安装更新版本的 devposture agent：请先卸载它，或安装不低于它的版本。/ A newer version of "
    "devposture agent is installed: uninstall it first, or install that version or a newer one."
)
WIX_NAMESPACE = "http://schemas.microsoft.com/wix/2006/wi"
DOLLAR_VARIABLE = "DevpostureDollar"
WIXL_DEFINES = {DOLLAR_VARIABLE: "$"}  # wixl -D NAME=VALUE: see _literal
# Windows Installer paths are limited to MAX_PATH (260, with the terminating NUL).
MAX_PATH = 259
# Windows refuses these in names, and these names are devices.
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
            *(f"LPT{n}" for n in range(1, 10))}  # fmt: skip
_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_NAMESPACE = uuid.UUID(UPGRADE_CODE)


class LayoutError(Exception):
    """The frozen folder cannot be packaged; the message lists every problem and the fix."""


def product_version(text: str) -> str:
    """`text` if it is a valid MSI ProductVersion (major.minor.build, each a decimal number,
    major and minor at most 255, build at most 65535), else ValueError naming the fix.

    A fourth field is refused: Windows Installer ignores it when comparing versions, so two
    builds differing only there would not upgrade one another."""
    match = _VERSION.fullmatch(text)
    if not match:
        raise ValueError(
            f"version {text!r} is not an MSI product version: give three decimal numbers "
            "MAJOR.MINOR.BUILD (e.g. 1.4.2), without a pre-release or local tag and "
            "without a fourth field (Windows Installer ignores it, so upgrades would not "
            "happen)")  # fmt: skip
    major, minor, build = (int(part) for part in match.groups())
    if major > 255 or minor > 255 or build > 65535:
        raise ValueError(
            f"version {text!r} is out of Windows Installer's range: major and minor at most "
            "255, build at most 65535")  # fmt: skip
    return text


def product_code(version: str) -> str:
    """The ProductCode of `version`: the same for every build of one version, another for
    every version."""
    return _guid("product", version)


def component_guid(kind: str, relative: str) -> str:
    """The component GUID of a resource: `kind` ("file", "folder", "registry") and its path."""
    return _guid(kind, relative.lower())


def _guid(kind: str, name: str) -> str:
    return "{" + str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}")).upper() + "}"


def _identifier(prefix: str, relative: str) -> str:
    """An MSI identifier (letters, digits, '_' and '.', at most 72) for a path."""
    return prefix + hashlib.sha256(relative.lower().encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Layout:
    """The frozen folder: its files and its empty folders, as relative POSIX paths."""

    root: Path
    files: tuple[PurePosixPath, ...]
    empty_folders: tuple[PurePosixPath, ...]

    def folders(self) -> list[PurePosixPath]:
        """Every folder under the root that holds something, parents first."""
        found = {parent for path in (*self.files, *self.empty_folders) for parent in path.parents}
        found.update(self.empty_folders)
        found.discard(PurePosixPath("."))
        return sorted(found, key=_order)


def _order(path: PurePosixPath) -> tuple[str, ...]:
    return tuple(part.casefold() for part in path.parts)


def _name_problems(relative: PurePosixPath) -> list[str]:
    problems = []
    name = relative.name
    if _FORBIDDEN.search(name):
        problems.append(f"{relative}: Windows does not allow the characters <>:\"/\\|?* or "
                        "control characters in a name")  # fmt: skip
    if name.endswith((".", " ")):
        problems.append(f"{relative}: Windows drops a trailing dot or space from a name")
    if name.split(".")[0].upper() in _DEVICES:
        problems.append(f"{relative}: {name.split('.')[0]} is a device name on Windows")
    try:
        name.encode(CODEC)
    except UnicodeEncodeError:
        problems.append(
            f"{relative}: the name has characters that the MSI's code page {CODEPAGE} "
            f"(GBK) cannot hold")  # fmt: skip
    windows_path = INSTALL_ROOT + str(relative).replace("/", "\\")
    if len(windows_path) > MAX_PATH:
        problems.append(f"{relative}: installed as {windows_path} ({len(windows_path)} "
                        f"characters) it exceeds Windows Installer's {MAX_PATH}")  # fmt: skip
    return problems


def scan(root: Path) -> Layout:
    """The files and empty folders of the frozen folder `root`, or LayoutError listing every
    problem (the main executable's own check is pe_image's)."""
    if not root.is_dir():
        raise LayoutError(
            f"{root} is not a folder: give --frozen PyInstaller's one-folder output of the "
            "Windows build (dist/devposture-agent, holding devposture-agent.exe and "
            "_internal)")  # fmt: skip
    problems: list[str] = []
    files: list[PurePosixPath] = []
    empty: list[PurePosixPath] = []
    seen: dict[str, PurePosixPath] = {}

    def unreadable(error: OSError) -> None:
        problems.append(f"{error.filename}: cannot be read ({error.strerror})")

    for folder, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        here = Path(folder)
        names = sorted(dirnames + filenames)
        if here != root and not names:
            empty.append(PurePosixPath(here.relative_to(root).as_posix()))
        for name in names:
            path = here / name
            relative = PurePosixPath(path.relative_to(root).as_posix())
            problems.extend(_name_problems(relative))
            other = seen.setdefault(str(relative).casefold(), relative)
            if other != relative:
                problems.append(f"{relative} and {other} are one path on Windows, whose names "
                                "ignore case")  # fmt: skip
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(
                    f"{relative}: a symbolic link, which an MSI cannot install (a Windows "
                    "freeze has none: is this a macOS or Linux build?)")  # fmt: skip
                if name in dirnames:
                    dirnames.remove(name)  # os.walk does not follow it; say it once
            elif stat.S_ISREG(mode):
                files.append(relative)
            elif not stat.S_ISDIR(mode):
                problems.append(f"{relative}: not a regular file or folder")
    if PurePosixPath(MAIN_EXE) not in files:
        problems.insert(0, f"{root} has no {MAIN_EXE}: give --frozen PyInstaller's one-folder "
                        "output of the Windows build (installers/python/freeze/devposture.spec "
                        "run on Windows), not its parent or another program's")  # fmt: skip
    if problems:
        raise LayoutError("the frozen folder cannot be packaged:\n  " + "\n  ".join(problems))
    return Layout(root, tuple(sorted(files, key=_order)), tuple(sorted(empty, key=_order)))


def _literal(text: str) -> str:
    """`text` as wixl's preprocessor gives it back. It expands $(...) in every attribute and
    text and drops a "$" followed by anything else; its "$$" escape fails before "(" (wixl
    0.101 reads "$$(var.x)" as "$" and var.x). So every "$" is written as a variable that
    wixl is given on its command line (WIXL_DEFINES), whose value is not expanded again."""
    return text.replace("$", f"$(var.{DOLLAR_VARIABLE})")


def _element(
    parent: ET.Element, tag: str, text: str | None = None, **attributes: str
) -> ET.Element:
    literal = {key: _literal(value) for key, value in attributes.items()}
    element = ET.SubElement(parent, f"{{{WIX_NAMESPACE}}}{tag}", literal)
    if text is not None:
        element.text = _literal(text)
    return element


def source(layout: Layout, version: str) -> bytes:
    """The WiX source (UTF-8 XML) of the MSI of `layout` at `version`."""
    version = product_version(version)
    ET.register_namespace("", WIX_NAMESPACE)
    wix = ET.Element(f"{{{WIX_NAMESPACE}}}Wix")
    product = _element(wix, "Product", Id=product_code(version), Name=PRODUCT_NAME,
                       Language=LANGUAGE, Version=version, Manufacturer=MANUFACTURER,
                       UpgradeCode=UPGRADE_CODE)  # fmt: skip
    _element(product, "Package", InstallerVersion=INSTALLER_VERSION, Compressed="yes",
             InstallScope="perMachine", Manufacturer=MANUFACTURER, Description=PRODUCT_NAME,
             Comments=f"{PRODUCT_NAME} {version}: device posture reports for the company's "
             "collector")  # fmt: skip
    _element(product, "MajorUpgrade", DowngradeErrorMessage=DOWNGRADE_MESSAGE)
    _element(product, "MediaTemplate", EmbedCab="yes")
    product.append(ET.Comment(
        " Public properties, empty unless given on msiexec's command line: "
        + ", ".join(PUBLIC_PROPERTIES) + ". wixl 0.101 has no Property/@Secure; build_msi.py "
        "lists them in SecureCustomProperties after wixl. File sources are relative to the "
        "frozen folder, where wixl runs (it takes no absolute source path). "))  # fmt: skip
    _element(product, "Property", Id="ARPNOMODIFY", Value="1")
    build = _element(product, "Property", Id=BUILD_PROPERTY)
    _element(build, "RegistrySearch", Id=BUILD_SEARCH_ID, Root="HKLM", Key=WINDOWS_KEY,
             Name="CurrentBuildNumber", Type="raw", Win64="yes")  # fmt: skip
    saved = _element(product, "Property", Id=SAVED_FOLDER_PROPERTY)
    _element(saved, "RegistrySearch", Id=SAVED_FOLDER_SEARCH_ID, Root="HKLM", Key=REGISTRY_KEY,
             Name="InstallFolder", Type="raw", Win64="yes")  # fmt: skip
    for condition, message in MESSAGES.items():
        _element(product, "Condition", condition, Message=message)

    target = _element(product, "Directory", Id="TARGETDIR", Name="SourceDir")
    program_files = _element(target, "Directory", Id="ProgramFiles64Folder")
    vendor = _element(program_files, "Directory", Id="VendorFolder", Name=VENDOR_FOLDER)
    install = _element(vendor, "Directory", Id="INSTALLDIR", Name=PROGRAM_FOLDER)
    directories = {PurePosixPath("."): install}
    for folder in layout.folders():
        directories[folder] = _element(
            directories[folder.parent], "Directory", Id=_identifier("d", str(folder)),
            Name=folder.name)  # fmt: skip

    components = []
    for relative in layout.files:
        main = relative == PurePosixPath(MAIN_EXE)
        component_id = MAIN_COMPONENT_ID if main else _identifier("c", str(relative))
        component = _element(directories[relative.parent], "Component", Id=component_id,
                             Guid=component_guid("file", str(relative)), Win64="yes")  # fmt: skip
        _element(component, "File", Id=MAIN_FILE_ID if main else _identifier("f", str(relative)),
                 Name=relative.name, Source=str(relative), KeyPath="yes")  # fmt: skip
        if main:
            _service(component)
        components.append(component_id)
    for folder in layout.empty_folders:
        component_id = _identifier("e", str(folder))
        component = _element(directories[folder], "Component", Id=component_id,
                             Guid=component_guid("folder", str(folder)), Win64="yes")  # fmt: skip
        _element(component, "CreateFolder")
        components.append(component_id)
    registry = _element(
        install, "Component", Id=REGISTRY_COMPONENT_ID,
        Guid=component_guid("registry", "HKLM\\" + REGISTRY_KEY), Win64="yes")  # fmt: skip
    _element(registry, "RegistryValue", Root="HKLM", Key=REGISTRY_KEY, Name="InstallFolder",
             Type="string", Value="[INSTALLDIR]", KeyPath="yes")  # fmt: skip
    _element(registry, "RegistryValue", Root="HKLM", Key=REGISTRY_KEY, Name="Version",
             Type="string", Value=version)  # fmt: skip
    components.append(REGISTRY_COMPONENT_ID)

    feature = _element(product, "Feature", Id=FEATURE_ID, Level="1", Title=PRODUCT_NAME)
    for component_id in components:
        _element(feature, "ComponentRef", Id=component_id)

    _element(product, "CustomAction", Id=SETUP_ACTION, FileKey=MAIN_FILE_ID,
             ExeCommand=SETUP_COMMAND, Execute="deferred", Impersonate="no",
             Return="check")  # fmt: skip
    _element(product, "CustomAction", Id=CLEANUP_ACTION, FileKey=MAIN_FILE_ID,
             ExeCommand=CLEANUP_COMMAND, Execute="deferred", Impersonate="no",
             Return="ignore")  # fmt: skip
    _element(product, "CustomAction", Id=SAVED_FOLDER_ACTION, Property="INSTALLDIR",
             Value=f"[{SAVED_FOLDER_PROPERTY}]")  # fmt: skip
    saved_at = str(SEQUENCE[SAVED_FOLDER_ACTION])
    sequence = _element(product, "InstallExecuteSequence")
    for table in (_element(product, "InstallUISequence"), sequence):
        _element(table, "Custom", SAVED_FOLDER_CONDITION, Action=SAVED_FOLDER_ACTION,
                 Sequence=saved_at)  # fmt: skip
    _element(sequence, "RemoveExistingProducts", Sequence=str(SEQUENCE["RemoveExistingProducts"]))
    _element(sequence, "Custom", SETUP_CONDITION, Action=SETUP_ACTION,
             Sequence=str(SEQUENCE[SETUP_ACTION]))  # fmt: skip
    _element(sequence, "Custom", CLEANUP_CONDITION, Action=CLEANUP_ACTION,
             Sequence=str(SEQUENCE[CLEANUP_ACTION]))  # fmt: skip

    ET.indent(wix, space="  ")
    return bytes(ET.tostring(wix, encoding="utf-8", xml_declaration=True)) + b"\n"


def _service(component: ET.Element) -> None:
    """The Windows service, in the main executable's component (so its path is that file)."""
    _element(component, "ServiceInstall", Id=SERVICE_ID, Name=SERVICE_NAME,
             DisplayName=SERVICE_DISPLAY_NAME, Description=SERVICE_DESCRIPTION,
             Type="ownProcess", Start="auto", ErrorControl="normal", Account="LocalSystem",
             Arguments=SERVICE_ARGUMENTS)  # fmt: skip
    _element(component, "ServiceControl", Id="AgentServiceControl", Name=SERVICE_NAME,
             Start="install", Stop="both", Remove="uninstall", Wait="yes")  # fmt: skip
