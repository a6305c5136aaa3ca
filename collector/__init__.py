"""devposture collector: enrolls devices, stores their reports and judges them against the policy."""

__version__ = "0.1.0"
