"""Remote profiles: the collectors an IT person administers, named once in
`~/.config/devposture/admin.toml`, so that `--collector --ca-fingerprint --credential-file`
need not be typed again for every command (`--profile NAME`, or the default profile).

    [defaults]
    profile = "hq"                  # used when neither --profile, --collector nor --data is given

    [hq]
    collector = "collector.example.com:7445"
    ca_fingerprint = "sha256:…"
    credential_file = "~/.config/devposture/li-wei.credential"

A profile names the credential's file, never the credential: the secret stays in one file the
person protects (`chmod 600`), not in a settings file that gets copied and shown. The file is
read as strictly as `collector.toml` (`devposture.config_file`): a misspelt key is refused
with its line, not ignored.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from devposture.collector.admin.commands import CommandError
from devposture.config_file import ConfigFile, Setting
from devposture.policy.cli_messages import enumeration, said

DEFAULTS = "defaults"
FILE_NAME = "admin.toml"
SAMPLE = (
    '[hq]\ncollector = "collector.example.com:7445"\nca_fingerprint = "sha256:…"\n'
    'credential_file = "~/.config/devposture/me.credential"\n'
)
# Keys a person might write the secret under: known, so that they are refused with the
# right fix instead of "not a setting".
_SECRET_KEYS = ("credential", "secret", "password", "token")
_PROFILE = {
    "collector": Setting(str, "", required=True, sample="collector.example.com:7445"),
    "ca_fingerprint": Setting(str, "", required=True, sample="sha256:…"),
    "credential_file": Setting(str, "", required=True, sample="~/.config/devposture/me.credential"),
} | {key: Setting(str, "") for key in _SECRET_KEYS}  # fmt: skip


@dataclass(frozen=True)
class Profile:
    name: str
    collector: str
    ca_fingerprint: str
    credential_file: str


def profiles_path() -> Path:
    """$XDG_CONFIG_HOME/devposture/admin.toml, ~/.config/devposture/admin.toml by default."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "devposture" / FILE_NAME


def _schema(path: Path) -> dict[str, dict[str, Setting]]:
    """[defaults], and each other section of the file as a profile."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        table = {}  # ConfigFile names the mistake
    names = [name for name, value in table.items() if isinstance(value, dict)]
    return {name: _PROFILE for name in names if name != DEFAULTS} | {
        DEFAULTS: {"profile": Setting(str, "", sample="hq")}
    }


def _read(path: Path) -> tuple[dict[str, Profile], str]:
    """The profiles by name, and the default profile's name ("" for none)."""
    settings = ConfigFile(path, _schema(path), name=FILE_NAME)
    profiles: dict[str, Profile] = {}
    for name in settings.schema:
        if name == DEFAULTS:
            continue
        for key in _SECRET_KEYS:
            if settings.given(name, key):
                settings.problem((name, key), said(
                    "[{name}] {key}: a profile never holds the secret itself. Save the"
                    " credential in a file only you can read (`chmod 600 FILE`), write"
                    ' credential_file = "FILE" instead, and delete this line.',
                    name=name, key=key,
                ))  # fmt: skip
        credential = Path(settings.text(name, "credential_file")).expanduser()
        profiles[name] = Profile(
            name, settings.text(name, "collector"), settings.text(name, "ca_fingerprint"),
            str(credential if credential.is_absolute() else path.parent / credential),
        )  # fmt: skip
    default = settings.text(DEFAULTS, "profile")
    if default and default not in profiles:
        names = enumeration(sorted(profiles)) or said("(none yet: add a [NAME] section)")
        settings.problem((DEFAULTS, "profile"), said(
            "[{section}] profile = {default} names no profile: write one of {names}",
            section=DEFAULTS, default=repr(default), names=names,
        ))  # fmt: skip
    settings.check()
    return profiles, default


def choose(name: str | None, path: Path | None = None) -> Profile | None:
    """The profile `--profile NAME` asks for; without a name, the default profile (None when
    the file or its default is missing: the command runs on the data folder)."""
    path = path or profiles_path()
    if not path.exists():
        if name is None:
            return None
        raise CommandError(
            "--profile {name}: there is no profiles file {path}. Create it (mode 600) with a"
            " section per collector:\n{sample}",
            name=name, path=path, sample=SAMPLE,
        )
    profiles, default = _read(path)
    wanted = name or default
    if not wanted:
        return None
    if wanted not in profiles:
        raise CommandError(
            "--profile {name}: {path} has no [{name}] section (profiles: {names}); add it or"
            " pick one of those.",
            name=wanted, path=path, names=enumeration(sorted(profiles)) or said("none yet"),
        )
    return profiles[wanted]
