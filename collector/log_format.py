"""The collector's logs: text for people (the default) or JSON lines for log pipelines, secrets
redacted. The code is shared with the agent (`devposture.log_format`); this name stays for the
collector's callers."""

from devposture.log_format import FORMATS, TEXT_FORMAT, JsonFormatter, RedactSecrets, configure

__all__ = ["FORMATS", "TEXT_FORMAT", "JsonFormatter", "RedactSecrets", "configure"]
