"""devposture collector: enrolls devices, stores their reports, judges them against the policy."""

__version__ = "0.1.0"
