"""Turn a frozen program (installers/python/freeze.py) into a .deb and an .rpm with nfpm.

    python3 installers/linux/package.py agent|collector --frozen DIR --nfpm PATH --out DIR
                                        [--release N]

What goes where (both formats):

    /opt/devposture-PROGRAM/lib/               the frozen program (its own Python and wheels)
    /opt/devposture-PROGRAM/bin/devposture-PROGRAM -> ../lib/devposture-PROGRAM
    /usr/bin/devposture-PROGRAM                -> /opt/devposture-PROGRAM/bin/devposture-PROGRAM
    /usr/lib/systemd/system/                   installers/linux/systemd/'s unit
    /etc/devposture/                           the agent's: IT's agent.toml and enroll.token
    /usr/share/doc/devposture-PROGRAM/         README, copyright (every bundled component)

The maintainer scripts are scripts/deb/* and scripts/rpm/* with this program's values filled in.
The glibc the frozen files need (the highest GLIBC_x.y symbol version they import) becomes the
packages' dependency on libc6 / glibc, so apt or dnf refuses a system that is too old instead
of a program that fails to start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from glibc_floor import glibc_floor  # noqa: E402

MAINTAINER = os.environ.get(
    "DEVPOSTURE_MAINTAINER", "devposture maintainers <devposture@example.com>"
)
HOMEPAGE = os.environ.get("DEVPOSTURE_HOMEPAGE", "https://example.com/devposture")


@dataclass(frozen=True)
class Program:
    """What differs between the agent's package and the collector's."""

    name: str
    section: str
    summary: str
    description: str
    service_user: str  # "" = runs as root
    config_dir: str  # "" = none
    start_when: str  # "" = start at once
    purge_files: str  # space-separated, deleted on purge (deb)
    extra_depends_deb: tuple[str, ...] = ()
    extra_depends_rpm: tuple[str, ...] = ()
    # Copyright lines for libraries a wheel carries itself (not Debian 12's copies).
    wheel_libraries: tuple[str, ...] = ()


PROGRAMS = {
    "agent": Program(
        name="devposture-agent",
        section="admin",
        summary="Device-posture agent: reports this computer's security posture",
        description=(
            "Observes this computer's security posture (antivirus, firewall, updates, Wi-Fi\n"
            "and VPN, chat backups) and reports the facts to the company's devposture\n"
            "collector over mutual TLS. It never reads chat content. Runs as the systemd\n"
            "service devposture-agent and enrolls with /etc/devposture/enroll.token.\n"
            "Carries its own Python: the computer needs none."
        ),
        service_user="",
        config_dir="/etc/devposture",
        start_when="",
        purge_files="/etc/devposture/enroll.token",
    ),
    "collector": Program(
        name="devposture-collector",
        section="net",
        summary="Device-posture collector: receives and judges devices' posture reports",
        description=(
            "Enrolls devices, stores their posture reports and judges them against the\n"
            "policy; serves IT's dashboard, the administration API and Prometheus metrics.\n"
            "Runs as the systemd service devposture-collector under its own system user,\n"
            "with its data in /var/lib/devposture-collector.\n"
            "Carries its own Python and PostgreSQL's libpq: the server needs neither."
        ),
        service_user="devposture-collector",
        config_dir="",
        start_when="/var/lib/devposture-collector/collector.toml",
        purge_files="",
        extra_depends_deb=("passwd",),
        extra_depends_rpm=("shadow-utils",),
        wheel_libraries=(
            " psycopg-binary's own libraries, built by the psycopg project (psycopg_binary.libs):",
            " libpq (PostgreSQL), OpenSSL (Apache-2.0), MIT Kerberos (MIT), OpenLDAP",
            " (OLDAP-2.8), Cyrus SASL (BSD-Attribution-HPND-disclaimer), keyutils and",
            " libxcrypt (LGPL-2.1-or-later), com_err (MIT).",
        ),
    ),
}
HOOKS = {
    "deb": {"postinstall": "postinst", "preremove": "prerm", "postremove": "postrm"},
    "rpm": {"preinstall": "pre", "postinstall": "post", "preremove": "preun",
            "postremove": "postun"},
}  # fmt: skip


def source_date() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time: the same tree gives the same dates."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return int(done.stdout.strip() or 0) or int(dt.datetime.now(dt.UTC).timestamp())


def render_scripts(program: Program, into: Path) -> dict[str, dict[str, str]]:
    """The maintainer scripts with this program's values, per format and nfpm hook."""
    values = {
        "PACKAGE": program.name, "SERVICE_USER": program.service_user,
        "CONFIG_DIR": program.config_dir, "START_WHEN": program.start_when,
        "PURGE_FILES": program.purge_files,
    }  # fmt: skip
    scripts: dict[str, dict[str, str]] = {}
    for kind, hooks in HOOKS.items():
        scripts[kind] = {}
        for hook, filename in hooks.items():
            text = (HERE / "scripts" / kind / filename).read_text(encoding="utf-8")
            text = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)
            out = into / kind / filename
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            out.chmod(0o755)
            scripts[kind][hook] = str(out)
    return scripts


def copyright_text(program: Program, components: list[list[str]]) -> str:
    """A machine-readable copyright file (DEP-5) naming every component the package bundles."""
    lines = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        f"Upstream-Name: {program.name}",
        "",
        "Files: *",
        "Copyright: devposture authors",
        "License: Apache-2.0",
        "Comment:",
        f" {program.name} carries its own Python under /opt/{program.name}/lib: the",
        " components below, each under its own license (full texts in their projects;",
        " on Debian, /usr/share/common-licenses has Apache-2.0 and the BSD licenses):",
    ]
    for name, version, license_ in components:
        lines.append(f"  {name} {version}: {license_}")
    lines += [
        " and shared libraries from Debian 12 (libssl3, libcrypto: Apache-2.0; zlib: Zlib;",
        " libffi: MIT; liblzma: 0BSD/public domain; libbz2: bzip2-1.0.6; libuuid: BSD-3-Clause).",
        *program.wheel_libraries,
        "",
        "License: Apache-2.0",
        " Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use",
        " this file except in compliance with the License. You may obtain a copy of the",
        " License at https://www.apache.org/licenses/LICENSE-2.0",
        " .",
        " On Debian systems, the full text of the Apache License, Version 2.0 can be found",
        " in the file /usr/share/common-licenses/Apache-2.0.",
    ]
    return "\n".join(lines) + "\n"


def changelog(version: str, when: int) -> str:
    """One entry for this build, in chglog's form (nfpm writes changelog.Debian.gz and the rpm's
    %changelog from it); the project's history is in git."""
    date = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {
        "semver": version, "date": date, "packager": MAINTAINER,
        "deb": {"urgency": "medium", "distributions": ["stable"]},
        "changes": [{"note": f"devposture {version.split('-', 1)[0]}, built from the repository"
                             " by make packages."}],
    }  # fmt: skip
    return json.dumps([entry], indent=2)  # JSON is YAML


def nfpm_config(program: Program, frozen: Path, *, version: str, release: str, floor: str,
                files: Path, scripts: dict[str, dict[str, str]]) -> dict[str, object]:
    name, doc = program.name, f"/usr/share/doc/{program.name}"
    unit = REPO / "installers" / "linux" / "systemd" / f"{name}.service"
    if not unit.exists():
        raise SystemExit(f"{unit.relative_to(REPO)} is missing: the package needs its unit")
    owned = {"owner": "root", "group": "root"}
    contents: list[dict[str, object]] = [
        {"src": str(frozen), "dst": f"/opt/{name}/lib", "type": "tree", "file_info": owned},
        {"src": f"../lib/{name}", "dst": f"/opt/{name}/bin/{name}", "type": "symlink"},
        # The command on PATH: Debian wants a link between top-level folders absolute,
        # Fedora's rpmlint relative.
        {"src": f"/opt/{name}/bin/{name}", "dst": f"/usr/bin/{name}", "type": "symlink",
         "packager": "deb"},
        {"src": f"../../opt/{name}/bin/{name}", "dst": f"/usr/bin/{name}", "type": "symlink",
         "packager": "rpm"},
        # /usr/lib/systemd/system for both: Debian's canonical place (lintian; /lib is an
        # alias on merged-/usr systems, which Debian 13 no longer lets packages ship into).
        {"src": str(unit), "dst": f"/usr/lib/systemd/system/{name}.service",
         "file_info": {**owned, "mode": 0o644}},
        {"src": str(files / "copyright"), "dst": f"{doc}/copyright", "packager": "deb",
         "file_info": {**owned, "mode": 0o644}},
        {"src": str(files / "copyright"), "dst": f"/usr/share/licenses/{name}/copyright",
         "type": "license", "packager": "rpm", "file_info": {**owned, "mode": 0o644}},
        {"src": str(HERE / "doc" / f"{name}.README"), "dst": f"{doc}/README", "packager": "deb",
         "file_info": {**owned, "mode": 0o644}},
        {"src": str(HERE / "doc" / f"{name}.README"), "dst": f"{doc}/README", "type": "doc",
         "packager": "rpm", "file_info": {**owned, "mode": 0o644}},
        {"src": str(HERE / "lintian" / name), "dst": f"/usr/share/lintian/overrides/{name}",
         "packager": "deb", "file_info": {**owned, "mode": 0o644}},
    ]  # fmt: skip
    if program.config_dir:
        contents.append({"dst": program.config_dir, "type": "dir",
                         "file_info": {**owned, "mode": 0o755}})  # fmt: skip
    # The .rpm owns only the folders it lists (the .deb every parent of its files): without
    # these, `rpm -e` left /opt/devposture-*/bin and the doc and licence folders behind, empty.
    for folder in (f"/opt/{name}", f"/opt/{name}/bin", doc, f"/usr/share/licenses/{name}"):
        contents.append({"dst": folder, "type": "dir", "packager": "rpm",
                         "file_info": {**owned, "mode": 0o755}})  # fmt: skip
    common_deb = [f"libc6 (>= {floor})", "libgcc-s1", "libstdc++6"]
    # RPM names libraries by soname; libc.so.6(GLIBC_x.y) is how it says "this glibc or newer".
    common_rpm = [f"libc.so.6(GLIBC_{floor})(64bit)", "libgcc_s.so.1()(64bit)",
                  "libstdc++.so.6()(64bit)"]
    return {
        "name": name, "arch": "amd64", "platform": "linux",
        "version": version, "release": release, "version_schema": "none",
        "section": program.section, "priority": "optional",
        "maintainer": MAINTAINER, "vendor": "devposture", "homepage": HOMEPAGE,
        "license": "Apache-2.0",
        "description": f"{program.summary}\n{program.description}",
        "contents": contents,
        "overrides": {
            "deb": {"depends": [*common_deb, *program.extra_depends_deb],
                    "scripts": scripts["deb"]},
            "rpm": {"depends": [*common_rpm, *program.extra_depends_rpm],
                    "scripts": scripts["rpm"]},
        },
        "rpm": {"summary": program.summary, "group": "System Environment/Daemons",
                "packager": MAINTAINER, "compression": "zstd"},
        "deb": {"compression": "xz"},
    }  # fmt: skip


def package(program_key: str, frozen_root: Path, nfpm: Path, out: Path, release: str) -> list[Path]:
    """Build the program's .deb and .rpm into `out`; returns their paths."""
    program = PROGRAMS[program_key]
    frozen = frozen_root / program.name
    components = [line.split("\t") for line in
                  (frozen_root / f"{program.name}.components.tsv").read_text().splitlines()]
    version = next(v for n, v, _ in components if n == program.name)
    floor = glibc_floor(frozen)
    when = source_date()
    out.mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="devposture-nfpm-") as scratch:
        files = Path(scratch)
        (files / "copyright").write_text(copyright_text(program, components), encoding="utf-8")
        (files / "changelog.yaml").write_text(changelog(f"{version}-{release}", when))
        scripts = render_scripts(program, files / "scripts")
        config = nfpm_config(program, frozen, version=version, release=release, floor=floor,
                             files=files, scripts=scripts)  # fmt: skip
        config["mtime"] = dt.datetime.fromtimestamp(when, dt.UTC).isoformat()
        config["changelog"] = str(files / "changelog.yaml")
        (files / "nfpm.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
        for kind in ("deb", "rpm"):
            target = files / kind
            target.mkdir(exist_ok=True)
            subprocess.run([str(nfpm), "package", "--config", str(files / "nfpm.yaml"),
                            "--packager", kind, "--target", str(target)],
                           check=True, stdout=subprocess.DEVNULL,
                           env={**os.environ, "SOURCE_DATE_EPOCH": str(when)})  # fmt: skip
            (made,) = target.iterdir()
            shutil.move(made, out / made.name)
            built.append(out / made.name)
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("program", choices=sorted(PROGRAMS))
    parser.add_argument("--frozen", type=Path, required=True, help="freeze.py's --out folder")
    parser.add_argument("--nfpm", type=Path, required=True, help="the nfpm program")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--release", default="1", help="package release (deb revision)")
    args = parser.parse_args()
    for path in package(args.program, args.frozen, args.nfpm, args.out, args.release):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
