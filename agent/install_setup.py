"""`devposture-agent setup` and `cleanup`: what an installer runs to configure the agent.

One command for every installer: the MSI's deferred custom action (as LocalSystem, with its
COLLECTOR, ENROLLMENT_FILE, CA_FINGERPRINT and HTTPS_PROXY properties), a Jamf or Intune
script after the macOS package, an administrator on Linux. It

1. checks every value first, and changes nothing when one is wrong;
2. makes the configuration folder private to the system (Windows: SYSTEM and Administrators
   only, `install_commands.secure_folder`; POSIX: root's, 0755, agent.toml 0644); on Windows
   the folder where the service publishes what `status` shows gets an ACL of its own that
   lets every user read it (`install_commands.public_folder`; the Linux unit and the macOS
   package make theirs 0755);
3. sets the given keys of agent.toml, keeping what else IT wrote (`toml_edit`), and checks the
   result as strictly as the service will read it (a bad result is undone);
4. copies the enrollment value from the file IT named into the enrollment file the service
   reads at its first start (0600), unless this computer is enrolled already (an upgrade run
   with the same properties needs no new enrollment);
5. on Windows, sets the service's recovery (`install_commands.service_recovery`).

An empty value means "not given": the MSI passes every property, set or not. The enrollment
value is never printed or logged, and never taken from the command line (only from a file):
msiexec's verbose log records every property. What it did, or why it refused, is printed and,
for an installer, appended to `logs/setup.log` in the configuration folder, since msiexec keeps
no custom action's output.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from devposture.agent.settings import (
    CONFIG_NAME,
    ENROLLMENT_NAME,
    ConfigError,
    Overrides,
    Settings,
    config_folder,
    load,
)
from devposture.agent.state import (
    STATE_ENTRIES,
    AgentState,
    ensure_private_dir,
    platform_public_dir,
    platform_state_dir,
    temporary_of,
    write_atomic,
)
from devposture.agent.toml_edit import TomlEditError, Value, set_values
from devposture.agent.windows import install_commands
from devposture.net.address import CollectorAddress, normalize_fingerprint
from devposture.net.enrollment_value import (
    MAX_FILE_BYTES,
    EnrollmentValueError,
    beijing_time,
    looks_like_value,
    parse_enrollment_value,
)
from devposture.net.proxy import HttpsProxy
from devposture.policy.cli_messages import Said, Worded, said, told
from devposture.policy.os_errors import os_error

INSTALLERS = ("msi", "pkg", "script")
# How each installer names the values, for its user's messages.
PROPERTY_NAMES = {
    "msi": {"collector": "COLLECTOR", "enrollment_file": "ENROLLMENT_FILE",
            "ca_fingerprint": "CA_FINGERPRINT", "https_proxy": "HTTPS_PROXY"},
}  # fmt: skip
Runner = Callable[[Sequence[str]], None]


class SetupError(Worded):
    """A value or a file that stops the setup; the message names it and the fix (worded in
    the reader's language on the terminal; setup.log keeps the English)."""


@dataclass(frozen=True)
class SetupRequest:
    """What the installer gave; empty: not given."""

    collectors: str = ""
    enrollment_file: str = ""
    ca_fingerprint: str = ""
    https_proxy: str = ""
    state: str = ""
    installer: str = "script"


def _named(request: SetupRequest, field: str) -> str | Said:
    option = "--" + field.replace("_", "-")
    prop = PROPERTY_NAMES.get(request.installer, {}).get(field)
    return said("the {prop} property ({option})", prop=prop, option=option) if prop else option


def run_windows_tool(argv: Sequence[str]) -> None:
    # install_commands: full paths, fixed arguments.
    done = subprocess.run(
        list(argv), capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        tool = PureWindowsPath(argv[0]).name
        raise SetupError(
            "{tool} {step} failed (exit {code}): {output}", tool=tool, step=argv[1],
            code=done.returncode, output=f"{done.stdout.strip()} {done.stderr.strip()}".strip(),
        )


class Setup:
    """One run of `setup`; `platform` and `runner` are given by tests (Windows' tools cannot
    run here: the commands are checked as data)."""

    def __init__(
        self, request: SetupRequest, folder: Path | None = None, *,
        platform: str = sys.platform, runner: Runner = run_windows_tool,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        state_default: Path | None = None, public_default: Path | None = None,
    ) -> None:  # fmt: skip
        self.request = request
        self.platform = platform
        self.folder = folder or config_folder(platform)
        # The state folder when agent.toml names none (the service's own default).
        self.state_default = state_default or platform_state_dir(platform)
        # Where the service publishes what `status` shows, when agent.toml names no other.
        self.public_default = public_default or platform_public_dir(platform)
        self.runner = runner
        self.now = now
        self.done: list[str] = []

    # -- 1. checking -----------------------------------------------------------------------

    def _values(self) -> dict[tuple[str, str], Value]:
        r = self.request
        values: dict[tuple[str, str], Value] = {}
        if r.collectors.strip():
            parts = tuple(p for p in r.collectors.replace(",", " ").split() if p)
            try:
                addresses = tuple(CollectorAddress.parse(p).target() for p in parts)
            except ValueError as exc:
                raise SetupError("{name}={value}: {problem}", name=_named(r, "collector"),
                                 value=repr(r.collectors), problem=exc) from None
            values["collector", "addresses"] = addresses
        if r.ca_fingerprint.strip():
            try:
                values["collector", "ca_fingerprint"] = normalize_fingerprint(r.ca_fingerprint)
            except ValueError as exc:
                raise SetupError("{name}: {problem}", name=_named(r, "ca_fingerprint"),
                                 problem=exc) from None
        if r.https_proxy.strip():
            try:
                HttpsProxy.parse(r.https_proxy.strip())
            except ValueError as exc:
                raise SetupError("{name}: {problem}", name=_named(r, "https_proxy"),
                                 problem=exc) from None
            values["network", "https_proxy"] = r.https_proxy.strip()
        if r.state.strip():
            state = Path(r.state.strip()).absolute()
            values["state", "folder"] = str(state)
        return values

    def _enrollment_text(self) -> str | None:
        """The enrollment value (or bare token) in the file named, checked; never shown."""
        r = self.request
        if not r.enrollment_file.strip():
            return None
        path = Path(r.enrollment_file.strip())
        where = _named(r, "enrollment_file")
        try:
            raw = path.read_bytes()[: MAX_FILE_BYTES + 1]
        except FileNotFoundError:
            raise SetupError(
                "{name}: {path} does not exist: give the full path of the file holding the"
                " enrollment value (a share the computer account can read, for Group Policy)",
                name=where, path=path,
            ) from None
        except OSError as exc:
            raise SetupError("{name}: cannot read {path} ({problem})", name=where, path=path,
                             problem=os_error(exc, exc.strerror)) from None
        if len(raw) > MAX_FILE_BYTES:
            raise SetupError("{name}: {path} is too big for an enrollment value", name=where,
                             path=path)
        try:
            text = raw.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            raise SetupError(
                "{name}: {path} is not text: save exactly what `devposture-collector token"
                " create --bundle` printed",
                name=where, path=path,
            ) from None
        if not text:
            raise SetupError("{name}: {path} is empty: put the enrollment value in it",
                             name=where, path=path)
        if looks_like_value(text):
            try:
                value = parse_enrollment_value(text)
            except EnrollmentValueError as exc:
                raise SetupError("{name}: {path}: {problem}", name=where, path=path,
                                 problem=exc) from None
            if value.expires <= self.now():
                raise SetupError(
                    "{name}: the enrollment value in {path} expired at {time}: ask IT for a new"
                    " one (`token create --bundle`)",
                    name=where, path=path, time=beijing_time(value.expires),
                )
        elif not text.startswith("dpt_"):
            raise SetupError(
                "{name}: {path} holds neither an enrollment value (dpe1.…) nor a token"
                " (dpt_…): save exactly what `devposture-collector token create --bundle`"
                " printed",
                name=where, path=path,
            )
        return text

    # -- 2 to 5. doing -------------------------------------------------------------------------

    def _secure_folder(self) -> None:
        if self.platform == "win32":
            self.folder.mkdir(parents=True, exist_ok=True)
            for argv in install_commands.secure_folder(PureWindowsPath(self.folder)):
                self.runner(argv)
            self.done.append(told("{folder}: SYSTEM and Administrators only", folder=self.folder))
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)

    def _write_config(self, values: dict[tuple[str, str], Value]) -> None:
        path = self.folder / CONFIG_NAME
        if not values:
            return
        try:
            before = path.read_text(encoding="utf-8") if path.exists() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise SetupError("cannot read {path} ({problem}): fix or delete it", path=path,
                             problem=exc) from None
        try:
            text = set_values(before or _NEW_FILE, values)
        except TomlEditError as exc:
            raise SetupError("cannot set {path}: {problem}", path=path, problem=exc) from None
        write_atomic(path, text.encode("utf-8"), 0o644)
        try:
            load(Overrides(config=path), environ={}, platform=self.platform)
        except ConfigError as exc:
            if before is None:
                path.unlink()
            else:
                write_atomic(path, before.encode("utf-8"), 0o644)
            raise SetupError("{path} was left as it was: {problem}", path=path,
                             problem=exc) from None
        for (table, key), value in values.items():
            shown = ", ".join(value) if isinstance(value, tuple) else value
            self.done.append(told("{path}: [{table}] {key} = {value}", path=path, table=table,
                                  key=key, value=shown))

    def _written(self) -> Settings | None:
        """What the folder's own agent.toml says (None: there is none). Never the system's
        agent.toml elsewhere: the folder given is the one being set up."""
        config = self.folder / CONFIG_NAME
        if not config.exists():
            return None
        return load(Overrides(config=config), environ={}, platform=self.platform)

    def _paths(self) -> tuple[Path, Path]:
        """The enrollment file and the state folder the service will use: agent.toml's, or
        the defaults (beside agent.toml; the platform's state folder)."""
        settings = self._written()
        if settings is None:
            return self.folder / ENROLLMENT_NAME, self.state_default
        given = settings.origins
        enrollment = settings.enrollment_file if given["enrollment_file"] != "default" else (
            self.folder / ENROLLMENT_NAME
        )  # fmt: skip
        state = settings.state_dir if given["state"] != "default" else self.state_default
        return enrollment, state

    def _enrolled_state(self, values: dict[tuple[str, str], Value]) -> Path | None:
        """The state folder the service will use, when it holds an enrollment already."""
        if ("state", "folder") in values:
            state = Path(str(values["state", "folder"]))
        else:
            try:
                state = self._paths()[1]
            except ConfigError:
                state = self.state_default
        return state if AgentState(state).is_enrolled() else None

    def _bare_token_needs(self, values: dict[tuple[str, str], Value]) -> None:
        """A bare token names no collector: agent.toml must, or the values given."""
        try:
            settings = self._written()
        except ConfigError:
            settings = None
        given = {key for (table, key) in values if table == "collector"}
        addresses = "addresses" in given or bool(settings and settings.collectors)
        pin = "ca_fingerprint" in given or bool(settings and settings.ca_fingerprint)
        if not (addresses and pin):
            r = self.request
            raise SetupError(
                "{name} holds a bare token (dpt_…), which names no collector: give {collector}"
                " and {pin} too, or use an enrollment value (`devposture-collector token create"
                " --bundle`), which holds all three",
                name=_named(r, "enrollment_file"), collector=_named(r, "collector"),
                pin=_named(r, "ca_fingerprint"),
            )

    def _public_folder(self) -> None:
        """Windows: the folder of what `status` shows, readable by the Users group, inside
        the private configuration folder (secured before, so its own ACL is set last)."""
        settings = self._written()
        given = settings is not None and settings.origins["public_folder"] != "default"
        folder = settings.public_dir if settings is not None and given else self.public_default
        folder.mkdir(parents=True, exist_ok=True)
        for argv in install_commands.public_folder(PureWindowsPath(folder)):
            self.runner(argv)
        self.done.append(told("{folder}: every user may read it (what `devposture-agent status`"
                              " shows, without keys)", folder=folder))

    def _place_enrollment(self, text: str, target: Path) -> None:
        """Only for a computer not enrolled yet (`run` skips the file on an enrolled one)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, (text + "\n").encode("utf-8"), 0o600)
        self.done.append(told("{path}: the enrollment value, for the service's first start",
                              path=target))

    def run(self) -> list[str]:
        """Do it all; the lines saying what was done. SetupError before any change when a
        value is wrong."""
        values = self._values()
        enrolled = self._enrolled_state(values)
        if enrolled is not None:
            # An upgrade run with the same properties: the file may be gone from the share or
            # the value expired, and neither matters any more.
            enrollment = None
            if self.request.enrollment_file.strip():
                self.done.append(told(
                    "already enrolled (state {state}): the enrollment file was not needed,"
                    " not read and not copied", state=enrolled
                ))
        else:
            enrollment = self._enrollment_text()
            if enrollment is not None and not looks_like_value(enrollment):
                self._bare_token_needs(values)
        self._secure_folder()
        self._write_config(values)
        enrollment_file, state_dir = self._paths()
        ensure_private_dir(state_dir)
        if enrollment is not None:
            self._place_enrollment(enrollment, enrollment_file)
        if self.platform == "win32":
            self._public_folder()
            for argv in install_commands.service_recovery():
                self.runner(argv)
            self.done.append(told("service {name}: restarts 60 s after any failure",
                                  name=install_commands.SERVICE_NAME))
        if not self.done:
            self.done.append(told("nothing to change"))
        return self.done


_NEW_FILE = (
    "# The devposture agent's settings (docs/agent-configuration.md), written by\n"
    "# `devposture-agent setup`; keys added by hand are kept when it runs again.\n"
)


# -- cleanup ----------------------------------------------------------------------------------


KEEP_HINTS = {
    "msi": told("uninstall with PURGE=1 to delete it"),
    "pkg": told("run uninstall.sh --purge to delete it"),
    "script": told("run `devposture-agent cleanup --purge=1` to delete it"),
}


def cleanup(
    purge: bool, folder: Path | None = None, platform: str = sys.platform,
    state_default: Path | None = None, installer: str = "script",
) -> list[str]:  # fmt: skip
    """What uninstalling leaves: everything, unless `purge`. With it, the configuration
    folder (agent.toml, the enrollment file, the logs and, on macOS and Windows, the state)
    goes, and from a state folder elsewhere the agent's own files (`STATE_ENTRIES`): the
    folder too when nothing else is left in it. A wrong [state] folder must not cost IT its
    other files."""
    folder = folder or config_folder(platform)
    if not purge:
        return [told("kept {folder} (the device's identity and unsent reports): {hint}",
                     folder=folder, hint=KEEP_HINTS.get(installer, KEEP_HINTS["script"]))]
    said: list[str] = []
    config = folder / CONFIG_NAME
    state_dir: Path | None = state_default or platform_state_dir(platform)
    if config.exists():
        try:
            settings = load(Overrides(config=config), environ={}, platform=platform)
        except ConfigError:
            state_dir = None  # unreadable: which folder it named is unknown, so none goes
        else:
            if settings.origins["state"] != "default":
                state_dir = settings.state_dir
    if state_dir is not None and state_dir.exists() and not state_dir.is_relative_to(folder):
        said.append(_purge_state(state_dir))
    if folder.exists():
        shutil.rmtree(folder)
        said.append(told("deleted {folder}", folder=folder))
    return said or [told("nothing to delete: {folder} is not there", folder=folder)]


def _purge_state(state_dir: Path) -> str:
    """Delete the agent's own entries of `state_dir`, and the folder once it is empty."""
    others = []
    for entry in state_dir.iterdir():
        name = entry.name
        ours = name in STATE_ENTRIES or temporary_of(name) in STATE_ENTRIES
        if not ours:
            others.append(name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if others:
        return told("deleted the agent's files from {folder}, and left the folder: it also"
                    " holds {count} other entries", folder=state_dir, count=len(others))
    state_dir.rmdir()
    return told("deleted {folder}", folder=state_dir)


def append_log(folder: Path, lines: list[str]) -> None:
    """Add the installer's run to `logs/setup.log` (msiexec keeps no custom action's output)."""
    logs = folder / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        stamp = beijing_time(dt.datetime.now(dt.UTC))
        with (logs / "setup.log").open("a", encoding="utf-8") as out:
            out.writelines(f"{stamp} {line}\n" for line in lines)
    except OSError:
        pass  # the message is on standard error too; a log that cannot be written stops nothing


__all__ = ["ENROLLMENT_NAME", "INSTALLERS", "Setup", "SetupError", "SetupRequest", "cleanup"]
