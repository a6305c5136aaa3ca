"""Windows probes: not written yet. Every fact reports NOT_SUPPORTED so the collector shows
UNKNOWN with a reason instead of silently missing facts. Windows readers (Security Center,
netsh advfirewall, Windows Update, netsh wlan, BitLocker) will replace these one by one."""

from agent.probes.facts import ORDER
from agent.probes.unsupported import all_not_supported

PROBES = all_not_supported(ORDER, "Windows")
