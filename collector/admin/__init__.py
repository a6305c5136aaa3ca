"""Administration of a collector: admin credentials and roles, the command table, the audit log
and the Admin gRPC service on its own port.

Agents never reach any of it: the agent ports serve only enrollment, renewal and reports, and
the admin port serves only `devposture.v1.Admin`. Every admin command, local or remote, read or
write, allowed or denied, goes through one runner (`commands.Runner`) that checks the role and
writes one audit entry.
"""
