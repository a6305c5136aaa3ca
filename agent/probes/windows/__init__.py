"""Windows probes, one module per fact. Each gathers through `ctx.host.run` and parses with
the pure parsers in agent.parsers.windows."""

from devposture.agent.probes.outcome import Probe
from devposture.agent.probes.windows import (
    antivirus,
    backups,
    chat_clients,
    disk,
    firewall,
    updates,
    vpn,
    wifi,
)
from devposture.v1 import devposture_pb2 as pb

PROBES: dict[pb.Fact.ValueType, Probe] = {
    pb.FACT_ANTIVIRUS: antivirus.probe,
    pb.FACT_FIREWALL: firewall.probe,
    pb.FACT_OS_UPDATES: updates.probe,
    pb.FACT_WIFI: wifi.probe,
    pb.FACT_VPN: vpn.probe,
    pb.FACT_CHAT_BACKUPS: backups.probe,
    pb.FACT_DISK_ENCRYPTION: disk.probe,
    pb.FACT_CHAT_CLIENTS: chat_clients.probe,
}
