"""The agent's settings: `agent.toml`, which IT pushes to every computer, the environment and the
command line, in that order of strength.

Every setting is taken from the first of these that gives it: the command line, then the
environment (`DEVPOSTURE_AGENT_*`, for a service manager's drop-in or a test), then agent.toml,
then the built-in default. The file is read as strictly as the collector's (`devposture.
config_file`): an unknown section or key, a value of the wrong kind and a value that cannot be
used are each refused with the file's line and the fix, all in one go, so that an agent never
runs on a default while IT believes the file. A missing file at the default place is fine (the
defaults); a file named by --config or $DEVPOSTURE_AGENT_CONFIG must exist.

agent.toml holds no secret (the enrollment secret has a file of its own, see
`devposture.agent.first_start`), so it may be readable by everyone (0644). The reference, with
every key, is docs/agent-configuration.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, TypeVar

from devposture.agent.state import STATE_ENV, platform_public_dir, platform_state_dir
from devposture.config_file import ConfigError, ConfigFile, Setting
from devposture.log_format import FORMATS, LEVELS
from devposture.net.address import CollectorAddress, normalize_fingerprint
from devposture.net.proxy import HttpsProxy
from devposture.policy.cli_messages import BadValue, enumeration, said
from devposture.policy.os_errors import os_error
from devposture.policy.toml_lines import line_of

__all__ = ["ConfigError", "Location", "Overrides", "Settings", "config_locations", "load"]

CONFIG_NAME = "agent.toml"
ENROLLMENT_NAME = "enroll.token"
CONFIG_ENV = "DEVPOSTURE_AGENT_CONFIG"
# The environment variable of each setting (the command line's options are in agent.cli).
ENV = {
    "collectors": "DEVPOSTURE_AGENT_COLLECTORS",
    "ca_fingerprint": "DEVPOSTURE_AGENT_CA_FINGERPRINT",
    "state": STATE_ENV,
    "public_folder": "DEVPOSTURE_AGENT_PUBLIC_FOLDER",
    "enrollment_file": "DEVPOSTURE_AGENT_ENROLLMENT_FILE",
    "log_format": "DEVPOSTURE_AGENT_LOG_FORMAT",
    "log_level": "DEVPOSTURE_AGENT_LOG_LEVEL",
    "log_file": "DEVPOSTURE_AGENT_LOG_FILE",
    "https_proxy": "DEVPOSTURE_AGENT_HTTPS_PROXY",
    "backup_folders": "DEVPOSTURE_AGENT_BACKUP_FOLDERS",
}
# The command-line option of each setting.
OPTIONS = {
    "collectors": "--collector",
    "ca_fingerprint": "--ca-fingerprint",
    "state": "--state",
    "public_folder": "--public-folder",
    "enrollment_file": "--enrollment-file",
    "log_format": "--log-format",
    "log_level": "--log-level",
    "log_file": "--log-file",
    "https_proxy": "--https-proxy",
    "backup_folders": "--backup-folder",
}
# Where each setting is written in agent.toml: (section, key).
KEYS = {
    "collectors": ("collector", "addresses"),
    "ca_fingerprint": ("collector", "ca_fingerprint"),
    "state": ("state", "folder"),
    "public_folder": ("state", "public_folder"),
    "enrollment_file": ("enrollment", "file"),
    "log_format": ("logging", "format"),
    "log_level": ("logging", "level"),
    "log_file": ("logging", "file"),
    "https_proxy": ("network", "https_proxy"),
    "backup_folders": ("backups", "folders"),
}

# Every section and key agent.toml may hold. A key added later is optional (an older file
# lacks it); a key is never renamed or removed without keeping the old name working.
SCHEMA: dict[str, dict[str, Setting]] = {
    "collector": {
        "addresses": Setting(list, (), sample=("collector.corp.example:7443",)),
        "ca_fingerprint": Setting(str, "", sample="sha256:<64 hex digits>"),
    },
    "enrollment": {"file": Setting(str, "", sample="/etc/devposture/enroll.token")},
    "state": {
        "folder": Setting(str, "", sample="/var/lib/devposture-agent"),
        "public_folder": Setting(str, "", sample="/run/devposture-agent"),
    },
    "logging": {
        "format": Setting(str, "text"),
        "level": Setting(str, "", sample="warning"),
        "file": Setting(str, "", sample="/Library/Logs/devposture/agent.log"),
    },
    "network": {"https_proxy": Setting(str, "", sample="http://proxy.corp.example:3128")},
    "backups": {"folders": Setting(list, (), sample=("/srv/wechat-backups",))},
}


# macOS: the settings a configuration profile pushed by MDM holds (preference domain
# com.devposture.agent, installers/macos/mobileconfig.py). Stronger than agent.toml: the
# profile is IT's enforced choice, the file may be a leftover.
MANAGED_PREFERENCES = Path("/Library/Managed Preferences/com.devposture.agent.plist")


@dataclass(frozen=True)
class Location:
    """A place the agent's configuration comes from on one OS. `read` is False for a place
    documented that this agent does not read (yet)."""

    path: str
    what: str
    read: bool = True


def config_folder(platform: str = sys.platform) -> Path:
    """The folder IT's files go in: agent.toml and the enrollment file."""
    if platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "devposture"
    if platform == "darwin":
        return Path("/Library/Application Support/devposture")
    return Path("/etc/devposture")


def config_locations(platform: str = sys.platform) -> list[Location]:
    """Where the configuration is looked for on `platform` ("linux", "darwin", "win32"), the
    first one read first. The packages for macOS and Windows (next issue) place it here."""
    places = []
    if platform == "darwin":
        places.append(Location(
            str(MANAGED_PREFERENCES),
            "managed preferences (a configuration profile pushed by MDM), same keys; stronger"
            " than agent.toml",
        ))  # fmt: skip
    places.append(Location(str(default_config_file(platform)), "agent.toml"))
    if platform == "win32":
        places.append(Location(
            r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\devposture\agent",
            "Group Policy registry values, same keys", read=False,
        ))  # fmt: skip
    return places


def default_config_file(platform: str = sys.platform) -> Path:
    return config_folder(platform) / CONFIG_NAME


def default_enrollment_file(platform: str = sys.platform) -> Path:
    return config_folder(platform) / ENROLLMENT_NAME


def default_log_file(platform: str = sys.platform) -> Path | None:
    """Where the service logs when nothing says otherwise: systemd's journal on Linux (None:
    standard error); a rotated file where no journal takes the service's output (launchd
    keeps what a daemon writes, unrotated; a Windows service's output goes nowhere)."""
    if platform == "win32":
        return config_folder(platform) / "logs" / "agent.log"
    if platform == "darwin":
        return Path("/Library/Logs/devposture/agent.log")
    return None


@dataclass(frozen=True)
class Overrides:
    """What the command line gave (None or empty: not given)."""

    config: Path | None = None
    state: Path | None = None
    public_folder: Path | None = None
    collectors: tuple[str, ...] = ()
    ca_fingerprint: str | None = None
    enrollment_file: Path | None = None
    log_format: str | None = None
    log_level: str | None = None
    log_file: Path | None = None
    https_proxy: str | None = None
    backup_folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    config_file: Path | None  # the agent.toml read, or None
    state_dir: Path
    # Where the service publishes what `status` shows for every user (agent.public_status).
    public_dir: Path
    collectors: tuple[CollectorAddress, ...]  # where to enroll when the token names none
    ca_fingerprint: str | None
    enrollment_file: Path
    log_format: str
    log_level: str | None  # None: the command's own default (info for `run`, else warning)
    # The service's log file (rotated), "-" for standard error; None: `default_log_file()`.
    # Commands other than the service always log to standard error.
    log_file: Path | None
    https_proxy: HttpsProxy | None
    backup_folders: tuple[str, ...]
    # Where each setting came from: "command line", "DEVPOSTURE_AGENT_…", "agent.toml:12",
    # or "default".
    origins: Mapping[str, str] = field(default_factory=dict)


# -- checking one value, from whichever source -----------------------------------------------

T = TypeVar("T")


def _addresses(values: tuple[str, ...]) -> tuple[CollectorAddress, ...]:
    if not values:
        raise BadValue("name at least one HOST:PORT, e.g. collector.corp.example:7443")
    return tuple(CollectorAddress.parse(v) for v in values)


def _format(text: str) -> str:
    if text not in FORMATS:
        raise BadValue("must be {choices}, not {value}",
                       choices=" or ".join(map(repr, FORMATS)), value=repr(text))  # fmt: skip
    return text


def _level(text: str) -> str:
    if text.lower() not in LEVELS:
        raise BadValue("must be one of {choices}, not {value}",
                       choices=enumeration(map(repr, LEVELS)), value=repr(text))  # fmt: skip
    return text.lower()


def _absolute(text: str) -> Path:
    """A path in agent.toml: the service's working folder is not IT's, so only absolute."""
    if not text.strip():
        raise BadValue("must not be empty")
    if not (Path(text).is_absolute() or PureWindowsPath(text).is_absolute()):
        raise BadValue("{path} is not an absolute path: write the whole path", path=repr(text))
    return Path(text)


def _folders(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if value.startswith("~"):
            continue  # "~" stands for every user's home folder
        _absolute(value)
    return values


def _split(text: str, separators: str) -> tuple[str, ...]:
    for separator in separators[1:]:
        text = text.replace(separator, separators[0])
    return tuple(part.strip() for part in text.split(separators[0]) if part.strip())


# -- reading agent.toml ----------------------------------------------------------------------


def _config_path(overrides: Overrides, environ: Mapping[str, str], platform: str) -> (
    tuple[Path, bool]
):  # fmt: skip
    """The file to read and whether it was named (a named file must exist)."""
    if overrides.config is not None:
        return overrides.config, True
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]), True
    return default_config_file(platform), False


def _read_file(path: Path, named: bool) -> tuple[ConfigFile | None, str]:
    """The parsed file (None when absent and not named), and how messages name its origin."""
    try:
        return ConfigFile(path, SCHEMA, name=CONFIG_NAME), str(path)
    except FileNotFoundError:
        if not named:
            return None, ""
        raise ConfigError(
            "the configuration file {path} does not exist: check the path given with --config"
            " or ${variable}, or leave both out to use {name} at its usual place",
            path=path, variable=CONFIG_ENV, name=CONFIG_NAME,
        ) from None
    except IsADirectoryError:
        raise ConfigError("{path} is a folder, not the agent's {name}", path=path,
                          name=CONFIG_NAME) from None  # fmt: skip
    except PermissionError:
        raise ConfigError(
            "cannot read {path} (permission denied): it holds no secret, so make it readable"
            " (`chmod 644 {path}`), or run as the agent's service account",
            path=path,
        ) from None
    except OSError as exc:
        raise ConfigError("cannot read {path} ({problem})", path=path,
                          problem=os_error(exc, exc.strerror)) from exc  # fmt: skip


class _Sources:
    """Takes each setting from the command line, the environment or the files (managed
    preferences, then agent.toml), in that order, checking it and saying where a bad one came
    from."""

    def __init__(
        self, overrides: Overrides, environ: Mapping[str, str], files: list[ConfigFile]
    ) -> None:
        self.overrides = overrides
        self.environ = environ
        self.files = files
        self.origins: dict[str, str] = {}

    def _file_value(self, name: str, kind: type) -> tuple[ConfigFile, str | tuple[str, ...]] | (
        None
    ):  # fmt: skip
        """The first file that writes this setting, and its value there."""
        section, key = KEYS[name]
        for file in self.files:
            if file.given(section, key):
                value = file.texts(section, key) if kind is list else file.text(section, key)
                return file, value
        return None

    def take(
        self, name: str, given: str | tuple[str, ...] | Path | None,
        check: Callable[[Any], object], kind: type = str, env_separators: str = "",
    ) -> object:  # fmt: skip
        """The checked value of setting `name`, or None when no source gives it."""
        variable = ENV[name]
        if given not in (None, ()):
            self.origins[name] = "command line"
            return self._checked(check, given, OPTIONS[name])
        raw = self.environ.get(variable, "").strip()
        if raw:
            self.origins[name] = variable
            value: object = _split(raw, env_separators) if env_separators else raw
            return self._checked(check, value, f"${variable}={raw!r}")
        found = self._file_value(name, kind)
        if found is None or not found[1]:  # not written, empty, or of the wrong kind (a problem)
            return None
        file, from_file = found
        section, key = KEYS[name]
        line = line_of(file.source, (section, key))
        self.origins[name] = f"{file.path}:{line}" if line else f"{file.path} ({section}.{key})"
        try:
            return check(from_file)
        except ValueError as exc:
            file.problem((section, key), said("[{section}] {key}: {problem}", section=section,
                                              key=key, problem=exc))  # fmt: skip
            return None

    @staticmethod
    def _checked(check: Callable[[Any], object], value: object, where: str) -> object:
        """`where`: the option or the variable as the person typed it."""
        try:
            return check(value)
        except ValueError as exc:
            raise ConfigError("{where}: {problem}", where=where, problem=exc) from exc


def _not_a_property_list(path: Path, exc: Exception) -> ConfigError:
    return ConfigError(
        "{path} is not a property list ({problem}): check the configuration profile for the"
        " com.devposture.agent domain in your MDM (installers/macos/mobileconfig.py makes one)",
        path=path, problem=exc,
    )


def _managed_preferences(path: Path) -> ConfigFile | None:
    """The managed preferences plist as a checked document, or None where there is none.
    macOS writes the profile's own bookkeeping (PayloadUUID …) beside IT's keys: left out.
    plistlib is imported only where a profile is installed: elsewhere the service would keep
    its XML parser resident for nothing."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise ConfigError(
            "cannot read the managed preferences {path} (permission denied): run the agent as"
            " root, as its launchd daemon does",
            path=path,
        ) from None
    except OSError as exc:
        raise _not_a_property_list(path, exc) from None
    import plistlib  # noqa: PLC0415

    try:
        with stream:
            data = plistlib.load(stream)
    except (plistlib.InvalidFileException, ValueError, OSError) as exc:
        raise _not_a_property_list(path, exc) from None
    if not isinstance(data, dict):
        raise ConfigError("{path} must hold a dictionary of sections, not a {kind}", path=path,
                          kind=type(data).__name__)  # fmt: skip
    table = {k: v for k, v in data.items() if not str(k).startswith("Payload")}
    return ConfigFile(path, SCHEMA, name="the managed preferences", table=table)


def load(
    overrides: Overrides = Overrides(),
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    managed_preferences: Path = MANAGED_PREFERENCES,
) -> Settings:
    """The settings in force; ConfigError naming every mistake (with its line in agent.toml,
    or the variable, option or managed preference it came from) when there is any. On macOS
    the managed preferences (`managed_preferences`) come before agent.toml."""
    env = os.environ if environ is None else environ
    path, named = _config_path(overrides, env, platform)
    file, _ = _read_file(path, named)
    files = [file] if file is not None else []
    if platform == "darwin":
        managed = _managed_preferences(managed_preferences)
        if managed is not None:
            files.insert(0, managed)
    s = _Sources(overrides, env, files)
    o = overrides
    collectors = s.take("collectors", o.collectors, _addresses, list, ", \t\n")
    pin = s.take("ca_fingerprint", o.ca_fingerprint, normalize_fingerprint)
    state = s.take("state", o.state, lambda v: Path(v) if isinstance(v, Path) else _absolute(v))
    public = s.take("public_folder", o.public_folder,
                    lambda v: Path(v) if isinstance(v, Path) else _absolute(v))  # fmt: skip
    enrollment_file = s.take(
        "enrollment_file", o.enrollment_file,
        lambda v: Path(v) if isinstance(v, Path) else _absolute(v),
    )  # fmt: skip
    log_format = s.take("log_format", o.log_format, _format)
    log_level = s.take("log_level", o.log_level, _level)
    log_file = s.take(
        "log_file", o.log_file,
        lambda v: Path(v) if isinstance(v, Path) or v == "-" else _absolute(v),
    )  # fmt: skip
    proxy = s.take("https_proxy", o.https_proxy, HttpsProxy.parse)
    folders = s.take("backup_folders", o.backup_folders, _folders, list, os.pathsep + "\n")
    for checked in files:
        checked.check()
    for name in ENV:
        s.origins.setdefault(name, "default")
    return Settings(
        config_file=path if file is not None else None,
        state_dir=_typed(state, Path) or platform_state_dir(platform),
        public_dir=_typed(public, Path) or platform_public_dir(platform),
        collectors=_typed(collectors, tuple) or (),
        ca_fingerprint=_typed(pin, str),
        enrollment_file=_typed(enrollment_file, Path) or default_enrollment_file(platform),
        log_format=_typed(log_format, str) or "text",
        log_level=_typed(log_level, str),
        log_file=_typed(log_file, Path),
        https_proxy=_typed(proxy, HttpsProxy),
        backup_folders=_typed(folders, tuple) or (),
        origins=s.origins,
    )


def _typed(value: object, kind: type[T]) -> T | None:
    if value is None:
        return None
    assert isinstance(value, kind), (value, kind)
    return value
