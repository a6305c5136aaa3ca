"""The two XML files of a product archive: the component's PackageInfo (what pkgbuild writes:
identifier, version, where it installs, its payload's size, its scripts) and the product's
Distribution (what productbuild writes: the title, which Macs it installs on, the one
component it holds)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

TITLE = "devposture agent · devposture 设备合规代理"
MIN_MACOS = "11.0"
DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'


def _render(root: ET.Element) -> bytes:
    ET.indent(root, space="    ")
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return DECLARATION + text + b"\n"


def package_info(*, identifier: str, version: str, files: int, kbytes: int,
                 scripts: tuple[str, ...] = ("preinstall", "postinstall")) -> bytes:  # fmt: skip
    """PackageInfo of a component installing at "/" as root. No bundles (bundle-version
    empty), no relocation, and existing folders keep their permissions (no
    overwrite-permissions): /Library is the Mac's, not ours."""
    info = ET.Element("pkg-info", {
        "format-version": "2", "identifier": identifier, "version": version,
        "install-location": "/", "auth": "root", "relocatable": "false",
        "postinstall-action": "none", "generator-version": "devposture installers/macos",
    })  # fmt: skip
    ET.SubElement(info, "payload", numberOfFiles=str(files), installKBytes=str(kbytes))
    ET.SubElement(info, "bundle-version")
    hooks = ET.SubElement(info, "scripts")
    for name in scripts:
        ET.SubElement(hooks, name, file=f"./{name}")
    return _render(info)


def distribution(*, identifier: str, version: str, component: str, kbytes: int,
                 architectures: list[str]) -> bytes:  # fmt: skip
    """Distribution of a product holding one component (`component`, the folder beside this
    file): installed on the startup disk only, macOS 11 or later, on the Macs whose
    architecture the program has; no choices shown."""
    script = ET.Element("installer-gui-script", minSpecVersion="2")
    ET.SubElement(script, "title").text = TITLE
    ET.SubElement(script, "options", {
        "customize": "never", "require-scripts": "false",
        "hostArchitectures": ",".join(architectures),
    })  # fmt: skip
    ET.SubElement(script, "domains", enable_anywhere="false", enable_currentUserHome="false",
                  enable_localSystem="true")  # fmt: skip
    check = ET.SubElement(script, "volume-check")
    allowed = ET.SubElement(check, "allowed-os-versions")
    ET.SubElement(allowed, "os-version", min=MIN_MACOS)
    outline = ET.SubElement(script, "choices-outline")
    ET.SubElement(outline, "line", choice=identifier)
    choice = ET.SubElement(script, "choice", id=identifier, visible="false", title=TITLE)
    ET.SubElement(choice, "pkg-ref", id=identifier)
    ref = ET.SubElement(script, "pkg-ref", id=identifier, version=version, auth="root",
                        installKBytes=str(kbytes), onConclusion="none")  # fmt: skip
    ref.text = f"#{component}"
    return _render(script)
