"""Every Windows program `devposture-agent setup` runs, in one place a reviewer can read.

The MSI is built with wixl, which writes no ACLs (no LockPermissions/MsiLockPermissionsEx
rows) and no service recovery (no MsiServiceConfigFailureActions). The MSI's deferred custom
action (as LocalSystem) runs `devposture-agent setup`, which does both with Windows' own tools:

* `icacls`: %ProgramData%\\devposture (agent.toml, the enrollment file, the state with the
  device key, the logs) for SYSTEM and the Administrators group only, inherited by all that is
  in it; the folder's default ACL would let every user read it, and create files in it. Its
  `status` folder alone, where the service publishes what `devposture-agent status` shows
  (agent.public_status), has an ACL of its own that lets the Users group read it too: a
  standard user reaches it through the private folder by the traverse right every account
  has (Bypass traverse checking), without seeing anything else in it.
* `sc.exe failure` / `failureflag`: restart the service 60 s after it fails, every time (the
  third action repeats), the failure count reset after a day; the flag makes a stop with an
  error exit count as a failure too, not only a crash. The same policy as the Linux unit's
  Restart=on-failure, RestartSec=60 (nobody watches an employee's PC).

Tools are named by full path under %SystemRoot%\\System32, never found on PATH. SIDs are
written as SIDs (`*S-1-5-18`), since the group names are translated on a Chinese Windows
(管理员组 "Administrators").
"""

from __future__ import annotations

import os
from pathlib import PureWindowsPath

SERVICE_NAME = "devposture-agent"
LOCAL_SYSTEM = "*S-1-5-18"
ADMINISTRATORS = "*S-1-5-32-544"
USERS = "*S-1-5-32-545"
# Restart after 60 s; a day without failure resets the count.
RESTART_DELAY_MS = 60_000
RESET_SECONDS = 86_400


def system32(environ: dict[str, str] | None = None) -> PureWindowsPath:
    env = os.environ if environ is None else environ
    return PureWindowsPath(env.get("SystemRoot", r"C:\Windows")) / "System32"


def secure_folder(folder: PureWindowsPath, environ: dict[str, str] | None = None) -> (
    list[list[str]]
):  # fmt: skip
    """Make `folder` SYSTEM's and the Administrators' only: owner Administrators, inherited
    entries removed, full control for both, inherited by every file and folder inside."""
    icacls = str(system32(environ) / "icacls.exe")
    return [
        [icacls, str(folder), "/setowner", ADMINISTRATORS],
        [icacls, str(folder), "/inheritance:r",
         "/grant:r", f"{LOCAL_SYSTEM}:(OI)(CI)F", f"{ADMINISTRATORS}:(OI)(CI)F"],
    ]  # fmt: skip


def public_folder(folder: PureWindowsPath, environ: dict[str, str] | None = None) -> (
    list[list[str]]
):  # fmt: skip
    """Make `folder` readable by every user of this computer and writable by SYSTEM and the
    Administrators only: owner Administrators, the entries inherited from the private folder
    it sits in removed, full control for both, read for the Users group, inherited by the
    files the service writes in it."""
    icacls = str(system32(environ) / "icacls.exe")
    return [
        [icacls, str(folder), "/setowner", ADMINISTRATORS],
        [icacls, str(folder), "/inheritance:r", "/grant:r", f"{LOCAL_SYSTEM}:(OI)(CI)F",
         f"{ADMINISTRATORS}:(OI)(CI)F", f"{USERS}:(OI)(CI)RX"],
    ]  # fmt: skip


def service_recovery(environ: dict[str, str] | None = None) -> list[list[str]]:
    """Restart the agent's service whenever it fails or stops with an error."""
    sc = str(system32(environ) / "sc.exe")
    delay = str(RESTART_DELAY_MS)
    return [
        [sc, "failure", SERVICE_NAME, "reset=", str(RESET_SECONDS),
         "actions=", "/".join(["restart", delay] * 3)],
        [sc, "failureflag", SERVICE_NAME, "1"],
    ]  # fmt: skip
