"""The Windows MSI (installers/windows/build_msi.py): built here with wixl, read back with
msitools' own readers (msidump, msiinfo, msiextract; tests/packaging/msi_tables.py), signed and
verified with osslsigncode.

The frozen folder these tests package stands in for the native freeze, which only a Windows
build machine can make (installers/README.md): its devposture-agent.exe is PyInstaller's real
x64 Windows bootloader (tests/packaging/native_bootloaders.py), the head of every frozen
program, and _internal/ holds real files of this project in the shapes a freeze has (nested
folders, an empty file, an empty folder) and the names Windows allows that a builder can get
wrong (a space, Chinese characters, "$(...)", which wixl's preprocessor would expand).

Every expected value comes from the contract (/work/notes/issue16-contract.md, Windows) or from
the MSI format, written out here, not imported from the builder. Nothing here can install the
MSI: that needs Windows (msiexec), see installers/windows/README.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from tests.packaging import msi_tables
from tests.packaging.conftest import REPO, unavailable
from tests.packaging.msi_tables import Table
from tests.packaging.native_bootloaders import bootloader

BUILDER = REPO / "installers" / "windows" / "build_msi.py"
VERSION = "1.4.2"
NEWER = "1.5.0"
UPGRADE_CODE = "{313A564B-8067-4F2C-B478-9C5999A27108}"
SERVICE_DESCRIPTION = (
    "设备合规代理 devposture: reports antivirus, firewall, updates, Wi-Fi and chat-backup state "
    "to the company's collector"
)
SETUP = ('setup --installer msi "--collector=[COLLECTOR]" "--enrollment-file=[ENROLLMENT_FILE]" '
         '"--ca-fingerprint=[CA_FINGERPRINT]" "--https-proxy=[HTTPS_PROXY]"')  # fmt: skip
CLEANUP = 'cleanup --installer msi "--purge=[PURGE]"'
PUBLIC = ("COLLECTOR", "ENROLLMENT_FILE", "CA_FINGERPRINT", "HTTPS_PROXY", "PURGE")
GUID = re.compile(r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}")
# The MSI format's numbers (Windows Installer SDK: CustomAction, Component, ServiceControl,
# ServiceInstall, Upgrade, RegLocator tables).
CA_SET_PROPERTY = 51  # a property set from a formatted text (type 51), immediate
CA_EXE_FROM_FILE = 18
CA_CONTINUE = 0x40  # Return="ignore"
CA_ASYNC = 0x80
CA_FIRST_SEQUENCE, CA_ONCE_PER_PROCESS = 0x100, 0x200  # also rollback / commit when in-script
CA_IN_SCRIPT = 0x400  # deferred
CA_NO_IMPERSONATE = 0x800
COMPONENT_REGISTRY_KEY_PATH = 0x4
COMPONENT_64BIT = 0x100
EVENT_INSTALL_START, EVENT_INSTALL_STOP, EVENT_INSTALL_DELETE = 0x1, 0x2, 0x8
EVENT_UNINSTALL_START, EVENT_UNINSTALL_STOP, EVENT_UNINSTALL_DELETE = 0x10, 0x20, 0x80
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_AUTO_START = 2
ERROR_CONTROL_NORMAL = 1
ERROR_CONTROL_VITAL = 0x8000
UPGRADE_ONLY_DETECT = 0x2
UPGRADE_MIN_INCLUSIVE, UPGRADE_MAX_INCLUSIVE = 0x100, 0x200
HKLM = "2"
LOCATOR_RAW, LOCATOR_64BIT = 0x2, 0x10


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = [tool for tool in (*msi_tables.TOOLS, "osslsigncode", "openssl")
               if shutil.which(tool) is None]  # fmt: skip
    if missing:
        unavailable(f"the MSI tests need {', '.join(missing)} "
                    "(apt-get install wixl msitools osslsigncode openssl)")  # fmt: skip


def run_builder(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BUILDER), *map(str, args)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for PyInstaller's one-folder Windows freeze (see the module's docstring)."""
    root = tmp_path_factory.mktemp("frozen") / "devposture-agent"
    internal = root / "_internal"
    package = internal / "devposture" / "agent"
    (package / "probes" / "windows").mkdir(parents=True)
    shutil.copyfile(bootloader("windows"), root / "devposture-agent.exe")
    for source in sorted((REPO / "agent").glob("*.py"))[:12]:
        shutil.copyfile(source, package / source.name)
    for source in sorted((REPO / "agent" / "probes" / "windows").glob("*.py")):
        shutil.copyfile(source, package / "probes" / "windows" / source.name)
    (internal / "devposture" / "py.typed").write_bytes(b"")
    (internal / "with space").mkdir()
    shutil.copyfile(REPO / "installers" / "README.md", internal / "with space" / "read me.md")
    (internal / "数据").mkdir()
    shutil.copyfile(REPO / "pyproject.toml", internal / "数据" / "微信 备份.toml")
    shutil.copyfile(REPO / "agent" / "__init__.py", internal / "$(env.HOME) $price.py")
    (internal / "empty folder").mkdir()
    return root


def files_of(root: Path) -> dict[PurePosixPath, bytes]:
    return {PurePosixPath(path.relative_to(root).as_posix()): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}  # fmt: skip


@dataclass(frozen=True)
class Built:
    msi: Path
    wxs: Path
    stdout: str
    tables: dict[str, Table]


def build(tmp: Path, frozen: Path, version: str, *extra: str | Path) -> Built:
    msi = tmp / f"devposture-agent-{version}-x64.msi"
    wxs = tmp / f"{version}.wxs"
    done = run_builder("--frozen", frozen, "--version", version, "--out", msi, "--wxs", wxs,
                       *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Built(msi, wxs, done.stdout, msi_tables.dump(msi, tmp / f"dump-{msi.stem}"))


@pytest.fixture(scope="module")
def built(frozen: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("msi"), frozen, VERSION)


@pytest.fixture(scope="module")
def newer(frozen: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("msi-newer"), frozen, NEWER)


@dataclass(frozen=True)
class Signing:
    cert: Path
    key: Path
    password: Path
    other_ca: Path


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Signing:
    """A throwaway self-signed code-signing certificate, its key encrypted with a passphrase
    held in a file, and another CA's certificate."""
    folder = tmp_path_factory.mktemp("signing")
    password = folder / "passphrase"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)

    def openssl(*args: str | Path) -> None:
        done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr

    openssl("req", "-x509", "-newkey", "rsa:2048", "-keyout", folder / "key.pem",
            "-passout", f"file:{password}", "-out", folder / "cert.pem", "-days", "2",
            "-subj", "/CN=devposture test code signing",
            "-addext", "extendedKeyUsage=codeSigning",
            "-addext", "keyUsage=digitalSignature")  # fmt: skip
    openssl("req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", folder / "other.key",
            "-out", folder / "other.pem", "-days", "2", "-subj", "/CN=another CA",
            "-addext", "basicConstraints=critical,CA:TRUE")  # fmt: skip
    return Signing(folder / "cert.pem", folder / "key.pem", password, folder / "other.pem")


@pytest.fixture(scope="module")
def signed(frozen: Path, signing: Signing, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("msi-signed"), frozen, VERSION,
                 "--sign-cert", signing.cert, "--sign-key", signing.key,
                 "--sign-pass-file", signing.password, "--sign-ca", signing.cert)  # fmt: skip


def verify(msi: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["osslsigncode", "verify", "-in", str(msi), "-CAfile", str(ca)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def properties(built: Built) -> dict[str, str]:
    return {row["Property"]: row["Value"] for row in built.tables["Property"].rows}


def sequence(built: Built, table: str = "InstallExecuteSequence") -> dict[str, int]:
    return {row["Action"]: int(row["Sequence"]) for row in built.tables[table].rows}


def main_file(built: Built) -> dict[str, str]:
    (row,) = [row for row in built.tables["File"].rows if row["FileName"] == "devposture-agent.exe"]
    return row


def directory_path(built: Built, directory: str) -> list[str]:
    """The Directory chain of `directory` from TARGETDIR: Directory keys, each followed by the
    folder name it adds ("target:source" and "short|long" forms read as their long target)."""
    rows = built.tables["Directory"].by("Directory")
    chain: list[str] = []
    while directory:
        row = rows[directory]
        name = row["DefaultDir"].split(":")[0].split("|")[-1]
        chain[:0] = [directory, name]
        directory = row["Directory_Parent"]
    return chain


def installed_path(built: Built, directory: str) -> PurePosixPath:
    """Where a directory lands below Program Files (64-bit)."""
    chain = directory_path(built, directory)
    assert chain[:4] == ["TARGETDIR", "SourceDir", "ProgramFiles64Folder", "."], chain
    return PurePosixPath(*chain[5::2]) if len(chain) > 4 else PurePosixPath(".")


# --- the build --------------------------------------------------------------------------------


def test_build_says_what_it_made(built: Built, frozen: Path) -> None:
    assert built.stdout.startswith(f"{built.msi}: devposture agent {VERSION} (ProductCode ")
    assert f"{len(files_of(frozen))} files, unsigned, sha256 " in built.stdout


def test_summary_information(built: Built) -> None:
    info = msi_tables.summary(built.msi)
    assert info["Template"] == "x64;1033"  # Platform x64, English
    assert info["Version"].startswith("500 ")  # InstallerVersion 500
    assert info["Source"].startswith("2 ")  # compressed, long file names, elevated
    assert info["Author"] == "devposture"
    assert info["Subject"] == "devposture agent"
    assert GUID.fullmatch(info["Revision number (UUID)"])  # the package code
    assert all(value.isascii() for value in info.values())  # its own code page is 1252


def test_msidump_and_msiinfo_read_the_same_tables(built: Built) -> None:
    assert set(built.tables) == msi_tables.table_names(built.msi)
    for name in ("Property", "File", "ServiceInstall"):
        assert msi_tables.export(built.msi, name) == built.tables[name]


def test_strings_are_stored_in_code_page_936(built: Built) -> None:
    """The Chinese service description and file names survive, read by a reader whose own
    locale would map to another code page (so the stored code page is what decodes them)."""
    assert msi_tables.codepage(built.msi) == 936
    english = {"WINDOWS_LANGUAGE": "en_US"}
    (service,) = msi_tables.export(built.msi, "ServiceInstall", env=english).rows
    assert service["Description"] == SERVICE_DESCRIPTION
    names = msi_tables.export(built.msi, "File", env=english).column("FileName")
    assert "微信 备份.toml" in names
    directories = msi_tables.export(built.msi, "Directory", env=english).column("DefaultDir")
    assert "数据" in directories


# --- properties, upgrades, conditions ---------------------------------------------------------


def test_product_properties(built: Built) -> None:
    values = properties(built)
    assert values["ProductVersion"] == VERSION
    assert values["UpgradeCode"] == UPGRADE_CODE
    assert GUID.fullmatch(values["ProductCode"])
    assert values["ProductName"] == "devposture agent"
    assert values["Manufacturer"] == "devposture"
    assert values["ProductLanguage"] == "1033"
    assert values["ALLUSERS"] == "1"  # per-machine
    assert values["ARPNOMODIFY"] == "1"


def test_public_properties_are_empty_by_default_and_secure(built: Built) -> None:
    """No default value (absent from the Property table: empty, "not given"), and listed in
    SecureCustomProperties so a managed install passes them to the elevated server side."""
    values = properties(built)
    secure = values["SecureCustomProperties"].split(";")
    for name in PUBLIC:
        assert name not in values
        assert name in secure
    assert {"WIX_UPGRADE_DETECTED", "WIX_DOWNGRADE_DETECTED"} <= set(secure)


def test_upgrade_table_removes_older_and_detects_newer(built: Built) -> None:
    rows = built.tables["Upgrade"].by("ActionProperty")
    assert set(rows) == {"WIX_UPGRADE_DETECTED", "WIX_DOWNGRADE_DETECTED"}
    older, newer = rows["WIX_UPGRADE_DETECTED"], rows["WIX_DOWNGRADE_DETECTED"]
    assert older["UpgradeCode"] == newer["UpgradeCode"] == UPGRADE_CODE
    # Every version below this one is found and removed (not only detected).
    assert (older["VersionMin"], older["VersionMax"]) == ("", VERSION)
    assert not int(older["Attributes"]) & (UPGRADE_ONLY_DETECT | UPGRADE_MAX_INCLUSIVE)
    # A version above this one is only detected: the launch condition then refuses.
    assert (newer["VersionMin"], newer["VersionMax"]) == (VERSION, "")
    assert int(newer["Attributes"]) & UPGRADE_ONLY_DETECT
    assert not int(newer["Attributes"]) & UPGRADE_MIN_INCLUSIVE
    assert older["Remove"] == newer["Remove"] == ""


def test_launch_conditions(built: Built) -> None:
    rows = built.tables["LaunchCondition"].by("Condition")
    windows10 = "Installed OR (VersionNT64 >= 603 AND DEVPOSTURE_WINDOWS_BUILD >= 10240)"
    assert set(rows) == {"NOT WIX_DOWNGRADE_DETECTED", "Privileged", windows10}
    assert (
        "A newer version of devposture agent is installed"
        in rows["NOT WIX_DOWNGRADE_DETECTED"]["Description"]
    )
    assert "administrator" in rows["Privileged"]["Description"]
    assert "64-bit Windows 10 or Windows Server 2016" in rows[windows10]["Description"]
    assert all("devposture agent" in row["Description"] for row in rows.values())


def test_windows_build_number_is_read_from_the_64_bit_registry(built: Built) -> None:
    searches = built.tables["AppSearch"].by("Property")
    assert set(searches) == {"DEVPOSTURE_WINDOWS_BUILD", "DEVPOSTURE_SAVED_INSTALLDIR"}
    search = searches["DEVPOSTURE_WINDOWS_BUILD"]
    locator = built.tables["RegLocator"].by("Signature_")[search["Signature_"]]
    assert locator["Root"] == HKLM
    assert locator["Key"] == "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
    assert locator["Name"] == "CurrentBuildNumber"
    assert int(locator["Type"]) == LOCATOR_RAW | LOCATOR_64BIT
    for table in ("InstallExecuteSequence", "InstallUISequence"):
        order = sequence(built, table)
        assert order["FindRelatedProducts"] < order["LaunchConditions"]
        assert order["AppSearch"] < order["LaunchConditions"]


# --- the service, the registry, the custom actions --------------------------------------------


def test_service_install(built: Built) -> None:
    (service,) = built.tables["ServiceInstall"].rows
    assert service["Name"] == "devposture-agent"
    assert service["DisplayName"] == "devposture agent"
    assert service["Description"] == SERVICE_DESCRIPTION
    assert int(service["ServiceType"]) == SERVICE_WIN32_OWN_PROCESS
    assert int(service["StartType"]) == SERVICE_AUTO_START
    assert int(service["ErrorControl"]) == ERROR_CONTROL_NORMAL | ERROR_CONTROL_VITAL
    assert service["StartName"] == "LocalSystem"
    assert service["Password"] == "" and service["Dependencies"] == ""
    assert service["Arguments"] == "service"
    # In the component of devposture-agent.exe: the service's program is that file.
    assert service["Component_"] == main_file(built)["Component_"]


def test_service_control(built: Built) -> None:
    (control,) = built.tables["ServiceControl"].rows
    assert control["Name"] == "devposture-agent"
    assert int(control["Event"]) == (EVENT_INSTALL_START | EVENT_INSTALL_STOP
                                     | EVENT_UNINSTALL_STOP | EVENT_UNINSTALL_DELETE)  # fmt: skip
    assert control["Wait"] == "1"
    assert control["Arguments"] == ""
    assert control["Component_"] == main_file(built)["Component_"]


def test_registry_values(built: Built) -> None:
    rows = built.tables["Registry"].by("Name")
    assert set(rows) == {"InstallFolder", "Version"}
    assert rows["InstallFolder"]["Value"] == "[INSTALLDIR]"
    assert rows["Version"]["Value"] == VERSION
    for row in rows.values():
        assert row["Root"] == HKLM
        assert row["Key"] == "SOFTWARE\\devposture\\agent"
    component = built.tables["Component"].by("Component")[rows["InstallFolder"]["Component_"]]
    assert component["KeyPath"] == rows["InstallFolder"]["Registry"]
    assert int(component["Attributes"]) & COMPONENT_REGISTRY_KEY_PATH
    assert int(component["Attributes"]) & COMPONENT_64BIT  # not Wow6432Node
    assert installed_path(built, component["Directory_"]) == PurePosixPath("devposture/agent")


def test_an_upgrade_installs_where_the_installed_version_is(built: Built) -> None:
    """INSTALLDIR given at the first install is read back from the installed version's
    InstallFolder value before the folders are resolved, unless given again."""
    search = built.tables["AppSearch"].by("Property")["DEVPOSTURE_SAVED_INSTALLDIR"]
    locator = built.tables["RegLocator"].by("Signature_")[search["Signature_"]]
    assert (locator["Root"], locator["Key"], locator["Name"]) == (
        HKLM, "SOFTWARE\\devposture\\agent", "InstallFolder")  # fmt: skip
    assert int(locator["Type"]) == LOCATOR_RAW | LOCATOR_64BIT
    (action,) = [row for row in built.tables["CustomAction"].rows if row["Source"] == "INSTALLDIR"]
    kind = int(action["Type"])  # wixl also sets 0x800, which only deferred actions heed
    assert kind & 0x3F == CA_SET_PROPERTY and not kind & CA_IN_SCRIPT  # immediate
    assert action["Target"] == "[DEVPOSTURE_SAVED_INSTALLDIR]"
    for table in ("InstallExecuteSequence", "InstallUISequence"):
        order = sequence(built, table)
        assert order["AppSearch"] < order[action["Action"]] < order["CostFinalize"]
        row = built.tables[table].by("Action")[action["Action"]]
        assert row["Condition"] == "DEVPOSTURE_SAVED_INSTALLDIR AND NOT INSTALLDIR"


def test_custom_actions_run_the_installed_program_deferred_as_system(built: Built) -> None:
    actions = {target: row for target, row in built.tables["CustomAction"].by("Target").items()
               if row["Source"] != "INSTALLDIR"}  # fmt: skip
    assert set(actions) == {SETUP, CLEANUP}
    for action in actions.values():
        kind = int(action["Type"])
        assert kind & 0x3F == CA_EXE_FROM_FILE
        assert kind & CA_IN_SCRIPT and kind & CA_NO_IMPERSONATE
        assert not kind & (CA_ASYNC | CA_FIRST_SEQUENCE | CA_ONCE_PER_PROCESS)  # no rollback
        assert action["Source"] == main_file(built)["File"]
    assert not int(actions[SETUP]["Type"]) & CA_CONTINUE  # a failed setup fails the install
    assert int(actions[CLEANUP]["Type"]) & CA_CONTINUE  # a failed cleanup does not
    assert int(actions[SETUP]["Type"]) == 3090 and int(actions[CLEANUP]["Type"]) == 3154


def test_install_execute_sequence(built: Built) -> None:
    rows = built.tables["InstallExecuteSequence"].by("Action")
    order = sequence(built)
    setup = actions_by_target(built)[SETUP]
    cleanup = actions_by_target(built)[CLEANUP]
    assert order["InstallFiles"] < order["InstallServices"] < order[setup] < order["StartServices"]
    assert order["StopServices"] < order[cleanup] < order["RemoveFiles"]
    assert rows[setup]["Condition"] == 'NOT REMOVE~="ALL"'
    assert rows[cleanup]["Condition"] == 'REMOVE~="ALL" AND NOT UPGRADINGPRODUCTCODE'
    # The major upgrade removes the old product first, before this one's script starts.
    assert order["InstallValidate"] < order["RemoveExistingProducts"] < order["InstallInitialize"]
    assert order["FindRelatedProducts"] < order["LaunchConditions"] < order["InstallValidate"]
    assert len(set(order.values())) == len(order)


def actions_by_target(built: Built) -> dict[str, str]:
    return {row["Target"]: row["Action"] for row in built.tables["CustomAction"].rows
            if row["Source"] != "INSTALLDIR"}  # fmt: skip


# --- files, components, directories -----------------------------------------------------------


def test_every_file_has_its_own_component_whose_key_it_is(built: Built, frozen: Path) -> None:
    files = built.tables["File"].rows
    components = built.tables["Component"].by("Component")
    assert len(files) == len(files_of(frozen))
    assert Counter(row["Component_"] for row in files).most_common(1)[0][1] == 1
    for row in files:
        component = components[row["Component_"]]
        assert component["KeyPath"] == row["File"]
        assert int(component["Attributes"]) & COMPONENT_64BIT
        assert not int(component["Attributes"]) & COMPONENT_REGISTRY_KEY_PATH
    guids = [row["ComponentId"] for row in components.values()]
    assert all(GUID.fullmatch(guid) for guid in guids)
    assert len(set(guids)) == len(guids)


def test_every_file_lands_where_the_freeze_has_it(built: Built, frozen: Path) -> None:
    components = built.tables["Component"].by("Component")
    landed = {}
    for row in built.tables["File"].rows:
        folder = installed_path(built, components[row["Component_"]]["Directory_"])
        landed[folder / row["FileName"]] = int(row["FileSize"])
    expected = {PurePosixPath("devposture/agent") / path: len(data)
                for path, data in files_of(frozen).items()}  # fmt: skip
    assert landed == expected


def test_main_executable(built: Built) -> None:
    row = main_file(built)
    component = built.tables["Component"].by("Component")[row["Component_"]]
    assert installed_path(built, component["Directory_"]) == PurePosixPath("devposture/agent")
    assert directory_path(built, component["Directory_"])[-2:] == ["INSTALLDIR", "agent"]


def test_empty_folder_is_created(built: Built) -> None:
    (row,) = built.tables["CreateFolder"].rows
    assert installed_path(built, row["Directory_"]) == PurePosixPath(
        "devposture/agent/_internal/empty folder"
    )
    component = built.tables["Component"].by("Component")[row["Component_"]]
    assert component["Directory_"] == row["Directory_"] and component["KeyPath"] == ""


def test_one_feature_holds_every_component(built: Built) -> None:
    (feature,) = built.tables["Feature"].rows
    assert feature["Level"] == "1"
    linked = [row for row in built.tables["FeatureComponents"].rows]
    assert {row["Feature_"] for row in linked} == {feature["Feature"]}
    assert Counter(row["Component_"] for row in linked) == Counter(
        built.tables["Component"].column("Component")
    )


def test_one_embedded_cabinet(built: Built) -> None:
    (media,) = built.tables["Media"].rows
    assert media["Cabinet"] == "#cab1.cab"
    files = built.tables["File"].rows
    assert int(media["LastSequence"]) == len(files)
    assert sorted(int(row["Sequence"]) for row in files) == list(range(1, len(files) + 1))
    assert msi_tables.streams(built.msi) == {"cab1.cab", "\x05SummaryInformation"}


def test_msiextract_gives_exactly_the_frozen_folder(built: Built, frozen: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    extracted = msi_tables.extract(built.msi, tmp_path)
    assert [path.name for path in extracted.iterdir()] == ["devposture"]
    assert files_of(extracted / "devposture" / "agent") == files_of(frozen)


def test_not_signed_without_signing_options(built: Built) -> None:
    assert "\x05DigitalSignature" not in msi_tables.streams(built.msi)


# --- versions ---------------------------------------------------------------------------------


def test_a_newer_version_upgrades_this_one(built: Built, newer: Built) -> None:
    old, new = properties(built), properties(newer)
    assert new["UpgradeCode"] == old["UpgradeCode"] == UPGRADE_CODE
    assert new["ProductCode"] != old["ProductCode"]
    assert new["ProductVersion"] == NEWER
    older = newer.tables["Upgrade"].by("ActionProperty")["WIX_UPGRADE_DETECTED"]
    assert older["VersionMax"] == NEWER  # so VERSION is found and removed
    assert newer.tables["Registry"].by("Name")["Version"]["Value"] == NEWER
    # The same actions at the same numbers (wixl alone placed some differently per build).
    assert newer.tables["InstallExecuteSequence"] == built.tables["InstallExecuteSequence"]


def test_component_guids_stay_with_their_paths(built: Built, newer: Built) -> None:
    def guids(msi: Built) -> dict[PurePosixPath, str]:
        components = msi.tables["Component"].by("Component")
        return {installed_path(msi, components[row["Component_"]]["Directory_"])
                / row["FileName"]: components[row["Component_"]]["ComponentId"]
                for row in msi.tables["File"].rows}  # fmt: skip

    assert guids(built) == guids(newer)
    # The registry's and the empty folder's components too.
    every = [sorted(msi.tables["Component"].column("ComponentId")) for msi in (built, newer)]
    assert every[0] == every[1]
    assert len(every[0]) == len(guids(built)) + 2


def test_same_version_same_product_code_and_source(built: Built, signed: Built) -> None:
    """Two builds of one version: the same ProductCode, byte-identical WiX source and the same
    tables, row for row (only wixl's package code and timestamps differ)."""
    assert properties(signed)["ProductCode"] == properties(built)["ProductCode"]
    assert signed.wxs.read_bytes() == built.wxs.read_bytes()
    assert signed.tables == built.tables
    assert (
        msi_tables.summary(signed.msi)["Revision number (UUID)"]
        != msi_tables.summary(built.msi)["Revision number (UUID)"]
    )


# --- signing ----------------------------------------------------------------------------------


def test_signed_msi_verifies_with_its_certificate(signed: Built, signing: Signing) -> None:
    assert ", signed, sha256 " in signed.stdout
    assert "\x05DigitalSignature" in msi_tables.streams(signed.msi)
    done = verify(signed.msi, signing.cert)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Signature verification: ok" in done.stdout
    assert "Text description: devposture agent" in done.stdout
    assert "Message digest algorithm         : SHA256" in done.stdout
    assert "Subject: /CN=devposture test code signing" in done.stdout


def test_signed_msi_does_not_verify_with_another_ca(signed: Built, signing: Signing) -> None:
    done = verify(signed.msi, signing.other_ca)
    assert done.returncode != 0
    assert "Signature verification: failed" in done.stdout + done.stderr


def test_signed_msi_holds_the_same_files(signed: Built, frozen: Path, tmp_path: Path) -> None:
    assert files_of(msi_tables.extract(signed.msi, tmp_path) / "devposture" / "agent") == (
        files_of(frozen)
    )


def test_signing_is_refused_when_it_does_not_verify(frozen: Path, signing: Signing,
                                                    tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "out.msi"
    done = run_builder("--frozen", frozen, "--version", VERSION, "--out", out,
                       "--sign-cert", signing.cert, "--sign-key", signing.key,
                       "--sign-pass-file", signing.password,
                       "--sign-ca", signing.other_ca)  # fmt: skip
    assert done.returncode == 1
    assert "does not verify" in done.stderr and "--sign-ca" in done.stderr
    assert not out.exists()


def test_signing_with_a_wrong_passphrase_is_refused(frozen: Path, signing: Signing,
                                                    tmp_path: Path) -> None:  # fmt: skip
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    out = tmp_path / "out.msi"
    done = run_builder("--frozen", frozen, "--version", VERSION, "--out", out,
                       "--sign-cert", signing.cert, "--sign-key", signing.key,
                       "--sign-pass-file", wrong)  # fmt: skip
    assert done.returncode == 1
    assert "could not sign" in done.stderr
    assert "not the passphrase" not in done.stderr + done.stdout
    assert not out.exists()


def test_signing_options_go_together(frozen: Path, signing: Signing, tmp_path: Path) -> None:
    done = run_builder("--frozen", frozen, "--version", VERSION, "--out", tmp_path / "x.msi",
                       "--sign-cert", signing.cert)  # fmt: skip
    assert done.returncode == 2 and "--sign-key" in done.stderr


# --- refusals ---------------------------------------------------------------------------------


def binutils(tmp_path: Path, assembly: str, *link: str, as_flags: tuple[str, ...] = ()) -> bytes:
    """A tiny real Windows image, assembled and linked by MinGW-w64's binutils."""
    tools = ("x86_64-w64-mingw32-as", "x86_64-w64-mingw32-ld")
    if any(shutil.which(tool) is None for tool in tools):
        unavailable("making 32-bit and DLL images needs binutils-mingw-w64-x86-64")
    (tmp_path / "start.s").write_text(assembly)
    for command in ([tools[0], *as_flags, "start.s", "-o", "start.o"],
                    [tools[1], *link, "-e", "_start", "start.o", "-o", "image"]):  # fmt: skip
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    return (tmp_path / "image").read_bytes()


START = ".globl _start\n.text\n_start:\n  xorl %eax, %eax\n  ret\n"
# Debian's MinGW-w64 binutils carry no default i386pe linker script: this one lays out the one
# section the way ld's default does.
I386_SCRIPT = ("SECTIONS { . = SIZEOF_HEADERS; . = ALIGN(__section_alignment__); "
               ".text __image_base__ + __section_alignment__ : { *(.text) } }\n")  # fmt: skip


def pe32(tmp_path: Path) -> bytes:
    (tmp_path / "i386.ld").write_text(I386_SCRIPT)
    return binutils(tmp_path, START, "-m", "i386pe", "-T", "i386.ld", "--subsystem", "console",
                    as_flags=("--32",))  # fmt: skip


def dll64(tmp_path: Path) -> bytes:
    return binutils(tmp_path, START, "--dll")


def truncated(_: Path) -> bytes:
    return bootloader("windows").read_bytes()[:4096]


def elf(_: Path) -> bytes:
    return Path(sys.executable).resolve().read_bytes()


def macho(_: Path) -> bytes:
    return bootloader("macos").read_bytes()


@pytest.mark.parametrize(("make", "reason"), [
    (pe32, "is a Windows program for x86 (32-bit), not for x86-64"),
    (dll64, "is a DLL, not a program"),
    (truncated, "it is cut short"),
    (elf, "is an ELF file (a Linux program), not a Windows program"),
    (macho, "Mach-O file (a macOS program), not a Windows program"),
])  # fmt: skip
def test_refuses_a_main_executable_that_is_no_x64_windows_program(
        make: Callable[[Path], bytes], reason: str, tmp_path: Path) -> None:  # fmt: skip
    folder = tmp_path / "frozen"
    (folder / "_internal").mkdir(parents=True)
    (folder / "_internal" / "base.txt").write_text("x")
    (folder / "devposture-agent.exe").write_bytes(make(tmp_path))
    out = tmp_path / "out.msi"
    done = run_builder("--frozen", folder, "--version", VERSION, "--out", out)
    assert done.returncode == 1
    assert reason in done.stderr
    assert "frozen on a Windows x64 machine" in done.stderr  # the fix
    assert not out.exists()


def test_accepts_a_gui_program(tmp_path: Path) -> None:
    folder = tmp_path / "frozen"
    folder.mkdir()
    image = binutils(tmp_path, START.replace("%eax", "%rax").replace("xorl", "xorq"),
                     "--subsystem", "windows")  # fmt: skip
    (folder / "devposture-agent.exe").write_bytes(image)
    done = run_builder("--frozen", folder, "--version", VERSION, "--out", tmp_path / "gui.msi")
    assert done.returncode == 0, done.stderr


def test_refuses_a_folder_without_the_program(frozen: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.msi"
    done = run_builder("--frozen", frozen / "_internal", "--version", VERSION, "--out", out)
    assert done.returncode == 1
    assert "has no devposture-agent.exe" in done.stderr
    assert "one-folder output of the Windows build" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("version", ["1.2", "1.2.3.4", "1.2.3rc1", "0.1.0.dev1", "v1.2.3",
                                     "256.0.0", "1.256.0", "1.2.65536", "01.2.3", ""])  # fmt: skip
def test_refuses_a_version_that_is_no_msi_product_version(version: str, frozen: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "out.msi"
    done = run_builder("--frozen", frozen, "--version", version, "--out", out)
    assert done.returncode == 1
    assert f"version {version!r}" in done.stderr
    assert not out.exists()


def test_refuses_names_windows_or_the_code_page_cannot_hold(frozen: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frozen"
    shutil.copytree(frozen, folder)
    (folder / "_internal" / "emoji 😀.txt").write_text("x")
    (folder / "_internal" / "Read Me.md").write_text("x")
    (folder / "_internal" / "read me.md").write_text("x")
    (folder / "_internal" / "link").symlink_to("read me.md")
    (folder / "_internal" / "a:b").write_text("x")
    (folder / "_internal" / "aux.txt").write_text("x")
    (folder / "_internal" / ("x" * 230 + ".txt")).write_text("x")
    out = tmp_path / "out.msi"
    done = run_builder("--frozen", folder, "--version", VERSION, "--out", out)
    assert done.returncode == 1
    assert "emoji 😀.txt: the name has characters that the MSI's code page 936" in done.stderr
    assert "_internal/read me.md and _internal/Read Me.md are one path on Windows" in done.stderr
    assert "_internal/link: a symbolic link" in done.stderr
    assert "_internal/a:b: Windows does not allow" in done.stderr
    assert "_internal/aux.txt: aux is a device name on Windows" in done.stderr
    assert "(278 characters) it exceeds Windows Installer's 259" in done.stderr
    assert not out.exists()
