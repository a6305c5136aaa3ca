"""HostInfo: who this computer is. Used for enrollment and in every report."""

from __future__ import annotations

from devposture.agent.host import Host, HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.os_release import parse_os_release
from devposture.v1 import devposture_pb2 as pb

_OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
_READ_LIMIT = 64 * 1024
_NAMES: dict[pb.OsFamily.ValueType, str] = {
    pb.OS_FAMILY_WINDOWS: "Windows",
    pb.OS_FAMILY_MACOS: "macOS",
}


def _linux_release(host: Host) -> tuple[str, str]:
    """(NAME, VERSION_ID) from os-release, the first of the two standard places."""
    last: Exception | None = None
    for path in _OS_RELEASE:
        try:
            values = parse_os_release(host.read_bytes(path, _READ_LIMIT).decode("utf-8", "replace"))
        except (HostError, ParseError) as exc:
            last = exc
            continue
        return values.get("NAME", "Linux"), values.get("VERSION_ID", "")
    raise last if last else ParseError("os-release: not found")


def host_info_and_errors(host: Host) -> tuple[pb.HostInfo, list[pb.ProbeError]]:
    platform = host.host_info()
    info = pb.HostInfo(
        hostname=platform.hostname,
        os_family=host.os_family,
        architecture=platform.machine,
    )
    errors: list[pb.ProbeError] = []
    if host.os_family == pb.OS_FAMILY_LINUX:
        info.os_build = platform.release
        try:
            info.os_name, info.os_version = _linux_release(host)
        except (HostError, ParseError) as exc:
            code = exc.code if isinstance(exc, HostError) else pb.PROBE_ERROR_CODE_PARSE_ERROR
            errors.append(
                pb.ProbeError(fact=pb.FACT_HOST, code=code, message=str(exc), source="os-release")
            )
            info.os_name = "Linux"
    else:
        # Windows and macOS get their own readers later; platform's answer is a fair start.
        info.os_name = _NAMES.get(host.os_family, platform.system)
        info.os_version = platform.release
        info.os_build = platform.version
    return info, errors


def host_facts(host: Host) -> pb.HostInfo:
    """HostInfo alone, for enrollment (errors are reported with each posture report)."""
    return host_info_and_errors(host)[0]
