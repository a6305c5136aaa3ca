"""Why an enrollment could not talk to the collector, when it can be told: the port given is
the report port, or the name given is not on the collector's certificate.

gRPC reports both as UNAVAILABLE with a transport message ("Socket closed", "Peer name … is
not in peer certificate") that tells an employee or an installer nothing about the fix. Once
the collector's CA is pinned, one more TLS connection, verified against that CA, can tell:

* the report port asks every caller for a device certificate (mutual TLS). An agent that has
  none completes the TLS 1.3 handshake, and the collector then closes the connection as soon
  as the client speaks (its first HTTP/2 bytes), where the enrollment port answers them;
* the certificate the collector presents lists the names and addresses it may be reached
  by; the one given is either among them or not.

Only the error path runs this; a working enrollment opens no extra connection.
"""

from __future__ import annotations

from devposture.net.address import CollectorAddress
from devposture.net.proxy import HttpsProxy
from devposture.net.tls_probe import probe_tls, unlisted_name
from devposture.policy.cli_messages import Said, said

DEFAULT_ENROLL_PORT = 7443


def diagnose(
    address: CollectorAddress, ca_pem: bytes, timeout: float = 15.0,
    proxy: HttpsProxy | None = None,
) -> Said | None:  # fmt: skip
    """What is wrong with enrolling at `address`, whose CA is `ca_pem` (worded when the
    enrollment's error is shown); None when this cannot tell (the caller then says what gRPC
    said)."""
    found = probe_tls(address, ca_pem, timeout, proxy)
    if found is None:
        return None
    if found.asks_for_certificate:
        return said(
            "{target} asks for a device certificate, so it is probably the collector's report"
            " port (mutual TLS), which only enrolled devices can use. Enroll at the collector's"
            " enrollment port instead: {port} by default (`enroll_port` in the collector's"
            " collector.toml), e.g. --collector {example}",
            target=address.target(), port=DEFAULT_ENROLL_PORT,
            example=address.target(DEFAULT_ENROLL_PORT),
        )  # fmt: skip
    if found.names is not None and not found.name_listed:
        return unlisted_name(address, found.names)
    return None
