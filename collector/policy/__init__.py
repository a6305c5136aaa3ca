"""The collector's policy: which one is in force, read the same way by the report service, the
admin commands and the dashboard, without any of them importing the server."""

from devposture.collector.policy.in_force import (
    IN_FORCE,
    current_policy,
    keep_in_force,
    policy_in_force,
    policy_stamp,
)

__all__ = ["IN_FORCE", "current_policy", "keep_in_force", "policy_in_force", "policy_stamp"]
