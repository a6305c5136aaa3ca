"""The agent's Windows installer: an x64 MSI built on Linux with wixl, optionally signed.

    python3 installers/windows/build_msi.py --frozen DIR --version X.Y.Z
        [--out dist/devposture-agent-X.Y.Z-x64.msi] [--wxs FILE]
        [--sign-cert CERT.pem --sign-key KEY.pem [--sign-pass-file FILE]
         [--sign-ca CA.pem] [--timestamp-url URL]]

DIR is PyInstaller's one-folder output of the agent frozen on a Windows x64 machine
(devposture-agent.exe and _internal/). Nothing else is accepted: the main executable must be a
PE32+ x86-64 program (pe_image.py), and a folder Windows or an MSI cannot hold is refused with
every problem listed (wxs.scan).

1. wxs.py writes the WiX source into a temporary folder (--wxs keeps a copy);
2. wixl (msitools 0.101) compiles it: every file in its own component, one embedded cabinet;
3. msibuild (msitools) sets what wixl 0.101 cannot: the tables' code page (936, for the
   Chinese service description and names), the public properties in SecureCustomProperties
   (wixl has no Property/@Secure), the service's "vital" flag (a service that cannot be
   installed fails the install instead of leaving it half done);
4. the result is read back with msiinfo and compared with what was meant (a string the code
   page conversion lost would otherwise go unnoticed);
5. with --sign-cert and --sign-key, osslsigncode signs it and `osslsigncode verify` must pass
   (authenticode.py); without them it stays unsigned.

Exit 0 with the MSI at --out; 1 with the problem and its fix, --out not written.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import authenticode  # noqa: E402
import pe_image  # noqa: E402
import wxs  # noqa: E402

TOOLS = {"wixl": "wixl", "msibuild": "msitools", "msiinfo": "msitools"}
# What msibuild changes after wixl (see the module's docstring).
SECURE_PROPERTIES = (*wxs.PUBLIC_PROPERTIES, "WIX_DOWNGRADE_DETECTED", "WIX_UPGRADE_DETECTED")
SERVICE_ERROR_CONTROL_VITAL = 0x8000
SERVICE_ERROR_CONTROL = 1 | SERVICE_ERROR_CONTROL_VITAL  # normal, vital
# libgsf (under libmsi) encodes strings for a database whose code page is not yet set with
# the code page of this language; zh_CN gives 936, the code page the tables get after.
ENCODING_ENVIRONMENT = {"WINDOWS_LANGUAGE": "zh_CN"}


class BuildError(Exception):
    """The MSI cannot be built; the message says why and how to fix it."""


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, **ENCODING_ENVIRONMENT})  # fmt: skip
    if done.returncode != 0:
        raise BuildError(f"{what} failed ({' '.join(command[:2])} ...):\n"
                         + (done.stderr or done.stdout).strip())  # fmt: skip
    return done.stdout


def export(msi: Path, table: str) -> list[list[str]]:
    """The rows of `table` in `msi` (msiinfo export: three header lines, then tab-separated)."""
    text = _run(["msiinfo", "export", str(msi), table], f"reading table {table} back")
    return [line.split("\t") for line in text.splitlines()[3:] if line]


def compile_msi(wxs_file: Path, frozen: Path, out: Path) -> None:
    """wixl (in the frozen folder: the sources are relative to it), then msibuild's
    corrections."""
    defines = [f"--define={name}={value}" for name, value in wxs.WIXL_DEFINES.items()]
    done = subprocess.run(["wixl", "--arch", "x64", *defines, "--output", str(out), str(wxs_file)],
                          capture_output=True, text=True, timeout=600, check=False,
                          cwd=frozen, env={**os.environ, **ENCODING_ENVIRONMENT})  # fmt: skip
    if done.returncode != 0 or done.stderr.strip() or not out.is_file():
        raise BuildError(
            "wixl did not compile the WiX source cleanly (a warning means it ignored part of "
            f"it):\n{(done.stderr or done.stdout).strip()}")  # fmt: skip
    codepage = wxs_file.parent / "_ForceCodepage.idt"
    codepage.write_bytes(f"\r\n\r\n{wxs.CODEPAGE}\t_ForceCodepage\r\n".encode("ascii"))
    # Only this module's constants go into the queries: nothing from outside.
    secure = ";".join(SECURE_PROPERTIES)
    _run(["msibuild", str(out),
          "-i", str(codepage),
          "-q", f"UPDATE `Property` SET `Value` = '{secure}' "  # noqa: S608
                "WHERE `Property` = 'SecureCustomProperties'",
          "-q", f"UPDATE `ServiceInstall` SET `ErrorControl` = {SERVICE_ERROR_CONTROL} "  # noqa: S608
                f"WHERE `ServiceInstall` = '{wxs.SERVICE_ID}'"],
         "msibuild (code page, secure properties, vital service)")  # fmt: skip


def check_readback(msi: Path, layout: wxs.Layout, version: str) -> None:
    """What the MSI's tables say, compared with what was meant."""
    problems = []
    codepage = _run(["msiinfo", "export", str(msi), "_ForceCodepage"], "reading the code page")
    if codepage.strip("\r\n\0").split() != [str(wxs.CODEPAGE), "_ForceCodepage"]:
        problems.append(f"code page {codepage.split()[:1]}, not {wxs.CODEPAGE}")
    names = sorted(row[2] for row in export(msi, "File"))
    meant = sorted(path.name for path in layout.files)
    if names != meant:
        problems.append(f"file names {sorted(set(names) ^ set(meant))[:5]} differ")
    properties = dict(row[:2] for row in export(msi, "Property"))
    if properties.get("ProductVersion") != version:
        problems.append(f"ProductVersion {properties.get('ProductVersion')!r}")
    if properties.get("SecureCustomProperties") != ";".join(SECURE_PROPERTIES):
        problems.append(f"SecureCustomProperties {properties.get('SecureCustomProperties')!r}")
    services = export(msi, "ServiceInstall")
    if [(row[1], row[5], row[12]) for row in services] != [
        (wxs.SERVICE_NAME, str(SERVICE_ERROR_CONTROL), wxs.SERVICE_DESCRIPTION)
    ]:
        problems.append(f"service {[(row[1], row[5], row[12]) for row in services]}")
    if problems:
        raise BuildError("the built MSI does not hold what was meant (wixl or msibuild lost "
                         "something):\n  " + "\n  ".join(problems))  # fmt: skip


def build(args: argparse.Namespace) -> Path:
    version = wxs.product_version(args.version)
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise BuildError(f"building the MSI needs {', '.join(missing)} "
                         f"(Debian: apt-get install {' '.join(missing)})")  # fmt: skip
    layout = wxs.scan(args.frozen)
    pe_image.check_x64_program(args.frozen / wxs.MAIN_EXE)
    out: Path = args.out or Path("dist") / f"devposture-agent-{version}-x64.msi"
    with tempfile.TemporaryDirectory(prefix="devposture-msi-") as temporary:
        work = Path(temporary)
        wxs_file = work / "devposture-agent.wxs"
        wxs_file.write_bytes(wxs.source(layout, version))
        if args.wxs:
            args.wxs.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wxs_file, args.wxs)
        built = work / "unsigned.msi"
        compile_msi(wxs_file, args.frozen, built)
        check_readback(built, layout, version)
        if args.sign_cert:
            signed = work / "signed.msi"
            authenticode.sign(built, signed, certificate=args.sign_cert, key=args.sign_key,
                              pass_file=args.sign_pass_file,
                              timestamp_url=args.timestamp_url)  # fmt: skip
            authenticode.verify(signed, args.sign_ca or args.sign_cert, args.sign_cert)
            built = signed
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        shutil.copyfile(built, partial)
        partial.replace(out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: devposture agent {version} (ProductCode {wxs.product_code(version)}), "
          f"{len(layout.files)} files, {'signed' if args.sign_cert else 'unsigned'}, "
          f"sha256 {digest}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frozen",
        type=Path,
        required=True,
        help="PyInstaller's one-folder output of the Windows x64 freeze",
    )
    parser.add_argument("--version", required=True, help="the agent's version, MAJOR.MINOR.BUILD")
    parser.add_argument(
        "--out", type=Path, help="the MSI to write (default dist/devposture-agent-VERSION-x64.msi)"
    )
    parser.add_argument("--wxs", type=Path, help="also keep the generated WiX source here")
    signing = parser.add_argument_group("signing (all optional; without them, no signature)")
    signing.add_argument(
        "--sign-cert", type=Path, help="code-signing certificate, PEM (the leaf, then its chain)"
    )
    signing.add_argument("--sign-key", type=Path, help="its private key, PEM")
    signing.add_argument(
        "--sign-pass-file",
        type=Path,
        help="a file holding the key's passphrase (never on a command line)",
    )
    signing.add_argument(
        "--sign-ca",
        type=Path,
        help="CA certificates the signature must chain to (default: --sign-cert)",
    )
    signing.add_argument("--timestamp-url", help="an RFC 3161 timestamp server")
    args = parser.parse_args(argv)
    if bool(args.sign_cert) != bool(args.sign_key):
        parser.error("--sign-cert and --sign-key go together")
    if not args.sign_cert and (args.sign_pass_file or args.sign_ca or args.timestamp_url):
        parser.error(
            "--sign-pass-file, --sign-ca and --timestamp-url need --sign-cert and --sign-key"
        )
    try:
        build(args)
    except (ValueError, wxs.LayoutError, pe_image.NotAnX64Program, authenticode.SigningError,
            BuildError) as error:  # fmt: skip
        fix = ""
        if isinstance(error, pe_image.NotAnX64Program):
            fix = ("\nthe MSI needs the agent frozen on a Windows x64 machine: the"
                   " native-installers workflow does it (installers/README.md), or run"
                   " `python installers/python/freeze.py agent --build-wheels --wheels W --out OUT`"
                   " on Windows, and give OUT\\devposture-agent to --frozen")  # fmt: skip
        print(f"build_msi: refused: {error}{fix}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
