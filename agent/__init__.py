"""devposture agent: observes a computer's security posture and reports facts to the collector."""

__version__ = "0.1.0"
