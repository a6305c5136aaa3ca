"""IT alerts: what needs IT's attention, told once, as a digest, to WeCom, a webhook and email.

A device failing a check past its grace, a device gone STALE, a suspected clone, and the
collector's own problems (a certificate expiring, the data folder's disk filling) are found in
the store (`detect`), compared with what was told already (`digest`, the open items kept in the
database, so that a restart or another collector on the same database does not tell them
again), and put in one message per channel per interval (`render`, `payloads`). Messages wait
in a delivery outbox in the database and are sent with retries and backoff (`delivery`,
`channels`); the periodic work runs under a lease in `serve` (`task`).

Nothing told carries a Wi-Fi name, a network identifier, a check's reason (reasons may name
networks or paths) or chat content: devices by hostname, checks by title and standing.
"""
