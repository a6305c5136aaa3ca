"""Probes: read the host (through `agent.host`) and turn what they see into typed facts.

`collect_facts` is the entry point the agent calls; `host_facts` gives the HostInfo used at
enrollment. Per-OS probe modules live in `linux/`, `windows/` and `macos/`, chosen by the
host's os_family, so a replayed Windows host runs the Windows probes on any machine.
"""

from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.hostinfo import host_facts
from devposture.agent.probes.runner import collect_facts
from devposture.agent.probes.wifi_classify import classify_network

__all__ = ["ProbeConfig", "classify_network", "collect_facts", "host_facts"]
