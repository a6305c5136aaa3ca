"""The configuration profile IT's MDM (Jamf, Intune, Kandji …) pushes to the Macs before or
with the package: the agent's settings as managed preferences, and Full Disk Access for it.

    python3 installers/macos/mobileconfig.py --team-id ABCDE12345 \\
        [--collector collector.corp.example:7443 …] [--ca-fingerprint sha256:…] \\
        [--https-proxy http://proxy:3128] [--log-level info] [--backup-folder PATH …] \\
        [--organization NAME] --out devposture.mobileconfig

Two payloads:

- managed preferences for the domain com.devposture.agent (macOS writes them to
  /Library/Managed Preferences/com.devposture.agent.plist, which the agent reads before
  agent.toml): the same sections and keys as agent.toml, as nested dictionaries, only those
  given here. No secret: the enrollment value stays a file.
- Privacy Preferences Policy Control: Full Disk Access (SystemPolicyAllFiles) for the agent's
  program, named by its path and its code requirement, which holds the Apple Developer team
  id that signed it (`--team-id`, required: without it the grant would name no one). Reading
  ~/Library/Containers/com.tencent.xinWeChat needs it. MDM alone can grant it: a profile a
  person installs by hand gets no PPPC.

The profile's identifiers are fixed and its UUIDs derive from its contents: the same options
give the same file, and a changed profile replaces the old one (same PayloadIdentifier).
"""

from __future__ import annotations

import argparse
import json
import plistlib
import re
import sys
import uuid
from pathlib import Path

DOMAIN = "com.devposture.agent"
PROFILE_ID = f"{DOMAIN}.profile"
PROGRAM = "/opt/devposture-agent/lib/devposture-agent/devposture-agent"
TEAM_ID = re.compile(r"[A-Z0-9]{10}")
LEVELS = ("debug", "info", "warning", "error")
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:devposture:mobileconfig")
NAME = "devposture agent · devposture 设备合规代理"
DESCRIPTION = (
    "Settings of the devposture agent and Full Disk Access for it, so that it can check the"
    " chat backups' settings. devposture 代理的设置，并授予其完全磁盘访问权限，"
    "以检查聊天备份的设置。"
)


class ProfileError(ValueError):
    """An option cannot go into the profile; the message says how to fix it."""


def code_requirement(team_id: str) -> str:
    """The designated requirement of the agent's program as signed by `team_id`'s Developer ID
    Application certificate."""
    return (
        f'identifier "{DOMAIN}" and anchor apple generic'
        " and certificate 1[field.1.2.840.113635.100.6.2.6] /* exists */"
        " and certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */"
        f' and certificate leaf[subject.OU] = "{team_id}"'
    )


def _address(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    bare = host.removeprefix("[").removesuffix("]")
    if not sep or not bare or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProfileError(
            f"--collector {text!r} is not HOST:PORT, e.g. collector.corp.example:7443"
        )
    return text.strip()


def _fingerprint(text: str) -> str:
    cleaned = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ProfileError(
            "--ca-fingerprint must be 64 hexadecimal digits, optionally after sha256: (as"
            " `devposture-collector ca fingerprint` prints it)"
        )
    return "sha256:" + cleaned


def _proxy(text: str) -> str:
    if not re.fullmatch(r"http://[^/@\s]+:\d{1,5}/?", text.strip()):
        raise ProfileError(
            f"--https-proxy {text!r} must be http://HOST:PORT (no user name or password), e.g."
            " http://proxy.corp.example:3128"
        )
    return text.strip()


def _folder(text: str) -> str:
    if not (text.startswith("/") or text.startswith("~")):
        raise ProfileError(
            f"--backup-folder {text!r} must be an absolute path, or start with ~ (every user's"
            " home folder)"
        )
    return text


def settings(*, collectors: list[str] | None = None, ca_fingerprint: str = "",
             https_proxy: str = "", log_level: str = "", backup_folders: list[str] | None = None,
             ) -> dict[str, dict[str, object]]:  # fmt: skip
    """agent.toml's sections and keys for what is given (empty = not given)."""
    addresses = [_address(part) for text in collectors or [] for part in text.split(",")
                 if part.strip()]  # fmt: skip
    table: dict[str, dict[str, object]] = {}
    if addresses:
        table["collector"] = {"addresses": addresses}
    if ca_fingerprint:
        table.setdefault("collector", {})["ca_fingerprint"] = _fingerprint(ca_fingerprint)
    if https_proxy:
        table["network"] = {"https_proxy": _proxy(https_proxy)}
    if log_level:
        if log_level.lower() not in LEVELS:
            raise ProfileError(f"--log-level must be one of {', '.join(LEVELS)}, not {log_level!r}")
        table["logging"] = {"level": log_level.lower()}
    if backup_folders:
        table["backups"] = {"folders": [_folder(folder) for folder in backup_folders]}
    return table


def _uuid(identifier: str, contents: object) -> str:
    text = json.dumps(contents, sort_keys=True, ensure_ascii=False)
    return str(uuid.uuid5(NAMESPACE, f"{identifier}\n{text}")).upper()


def _payload(payload_type: str, identifier: str, name: str, contents: dict[str, object],
             ) -> dict[str, object]:  # fmt: skip
    return {
        "PayloadType": payload_type,
        "PayloadIdentifier": identifier,
        "PayloadUUID": _uuid(identifier, contents),
        "PayloadVersion": 1,
        "PayloadDisplayName": name,
        **contents,
    }


def profile(team_id: str, table: dict[str, dict[str, object]], organization: str = "",
            ) -> dict[str, object]:  # fmt: skip
    """The whole profile (a dictionary for plistlib)."""
    if not TEAM_ID.fullmatch(team_id):
        raise ProfileError(
            f"--team-id {team_id!r} is not an Apple Developer team id: 10 capital letters and"
            " digits, as in the agent's signing certificate (Developer ID Application: … (TEAMID));"
            " `codesign -dv --verbose=4 devposture-agent` prints it as TeamIdentifier"
        )
    preferences = _payload(DOMAIN, f"{PROFILE_ID}.settings",
                           "devposture agent settings · 代理设置", dict(table))  # fmt: skip
    grant = {
        "Identifier": PROGRAM,
        "IdentifierType": "path",
        "CodeRequirement": code_requirement(team_id),
        "Allowed": True,
        "Authorization": "Allow",
        "StaticCode": False,
        "Comment": "devposture agent: reads chat-backup settings (WeChat's container) for the"
                   " company's compliance checks; never chat content",
    }  # fmt: skip
    privacy = _payload("com.apple.TCC.configuration-profile-policy", f"{PROFILE_ID}.pppc",
                       "devposture agent: Full Disk Access · 完全磁盘访问",
                       {"Services": {"SystemPolicyAllFiles": [grant]}})  # fmt: skip
    content = [preferences, privacy]
    whole: dict[str, object] = {
        "PayloadType": "Configuration",
        "PayloadIdentifier": PROFILE_ID,
        "PayloadUUID": _uuid(PROFILE_ID, content),
        "PayloadVersion": 1,
        "PayloadScope": "System",
        "PayloadDisplayName": NAME,
        "PayloadDescription": DESCRIPTION,
        "PayloadContent": content,
    }
    if organization:
        whole["PayloadOrganization"] = organization
    return whole


def render(whole: dict[str, object]) -> bytes:
    return plistlib.dumps(whole, fmt=plistlib.FMT_XML, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--team-id", required=True, help="Apple Developer team id (10 characters)")
    parser.add_argument(
        "--collector",
        action="append",
        default=[],
        help="HOST:PORT; repeat it, or separate several with commas",
    )
    parser.add_argument("--ca-fingerprint", default="")
    parser.add_argument("--https-proxy", default="")
    parser.add_argument("--log-level", default="", choices=("", *LEVELS))
    parser.add_argument("--backup-folder", action="append", default=[])
    parser.add_argument("--organization", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        table = settings(collectors=args.collector, ca_fingerprint=args.ca_fingerprint,
                         https_proxy=args.https_proxy, log_level=args.log_level,
                         backup_folders=args.backup_folder)  # fmt: skip
        data = render(profile(args.team_id, table, args.organization))
    except ProfileError as exc:
        print(f"mobileconfig.py: {exc}", file=sys.stderr)
        return 1
    args.out.write_bytes(data)
    if not table:
        print(
            f"mobileconfig.py: no setting given: {args.out}'s managed preferences are empty"
            " (fill them in in the MDM, or the agent takes agent.toml's)",
            file=sys.stderr,
        )
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
