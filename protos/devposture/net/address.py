"""Where a collector is (`host:port`) and which CA it must show (a fingerprint), as IT types
them.

Apart from enrollment so that sending reports (agent.transport) does not load what enrolling
needs (the cryptography package, for the key and the request).
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.policy.cli_messages import BadValue


@dataclass(frozen=True)
class CollectorAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> CollectorAddress:
        """Parse `host:port` or `[v6 address]:port`."""
        host, sep, port = text.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadValue("{text} is not HOST:PORT (for example collector.example.com:7443)",
                           text=repr(text))  # fmt: skip
        return cls(host, int(port))

    def target(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"


def normalize_fingerprint(text: str) -> str:
    """Accept `sha256:ab..`, `AB:CD:..` or bare hex; return `sha256:` + lowercase hex."""
    cleaned = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise BadValue(
            "a CA fingerprint is 64 hexadecimal digits, optionally prefixed with 'sha256:'"
            " (as printed by `devposture-collector init` or `devposture-collector ca fingerprint`)"
        )
    return "sha256:" + cleaned
