"""What `token create --bundle` puts around a new token: the addresses agents reach this
collector's enrollment port by, and the fingerprint of the CA they pin, checked before the
token is made, so that a value that could not work is never handed out.

The addresses come from `--enroll-address` (repeatable), else from collector.toml's [listen]
host and enroll_port. A default that agents elsewhere cannot use (loopback, 0.0.0.0) is refused:
the operator names the real address, or states loopback on purpose by giving it. Every name must
be on the collector's server certificate, or agents would refuse the connection.
"""

from __future__ import annotations

import ipaddress

from devposture.collector.config import CollectorConfig
from devposture.collector.pki import fingerprint
from devposture.collector.trust import Trust, TrustError
from devposture.net.address import CollectorAddress
from devposture.net.tls_probe import listed
from devposture.policy.cli_messages import BadValue, enumeration, said


class BundleError(BadValue):
    """The value cannot be made as asked; the message names the fix, in the reader's
    language when shown (the audit log keeps its English)."""


def _not_for_agents(host: str) -> bool:
    """Whether a listening address is one agents on other computers cannot connect to."""
    if host.strip().lower() in ("", "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def enroll_addresses(config: CollectorConfig, given: list[str]) -> tuple[CollectorAddress, ...]:
    """The addresses to put in the value, each one on the server certificate."""
    if given:
        try:
            addresses = tuple(dict.fromkeys(CollectorAddress.parse(text) for text in given))
        except ValueError as exc:
            raise BundleError("--enroll-address: {problem}", problem=exc) from None
    elif _not_for_agents(config.host):
        default = CollectorAddress(config.host, config.enroll_port).target()
        raise BundleError(
            "collector.toml's [listen] host is {host}, which agents on other computers cannot"
            " use to reach this collector: give the address they reach it by, with"
            " --enroll-address HOST:PORT (repeatable, e.g. --enroll-address"
            " collector.corp.example:{port}); --enroll-address {default} says that the agents"
            " run on this machine",
            host=repr(config.host), port=config.enroll_port, default=default,
        )  # fmt: skip
    else:
        addresses = (CollectorAddress(config.host, config.enroll_port),)
    dns, ips = Trust(config).server_names()
    for address in addresses:
        if not listed(address.host, dns, ips):
            raise BundleError(
                "agents could not trust the collector at {host}: its certificate lists only"
                " {names}. Add the name with `devposture-collector tls rotate --san {name}`"
                " (enrolled agents notice nothing), or give --enroll-address with a name it"
                " lists",
                host=repr(address.host), names=enumeration(dns + ips) or said("no names"),
                name=address.host,
            )  # fmt: skip
    return addresses


def ca_fingerprint(config: CollectorConfig) -> str:
    """The fingerprint new agents pin: the signing CA's (`ca fingerprint`)."""
    try:
        return fingerprint(Trust(config).signing_authority().cert)
    except (TrustError, OSError, ValueError) as exc:
        raise BundleError("cannot read the collector's CA: {problem}", problem=exc) from exc
