"""macOS probes: not written yet. Every fact reports NOT_SUPPORTED so the collector shows
UNKNOWN with a reason. macOS readers (XProtect, socketfilterfw, softwareupdate,
system_profiler SPAirPortDataType, fdesetup) will replace these one by one."""

from agent.probes.facts import ORDER
from agent.probes.unsupported import all_not_supported

PROBES = all_not_supported(ORDER, "macOS")
