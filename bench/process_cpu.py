"""CPU time of processes, and the PostgreSQL backends serving a collector: what the ingest
benchmarks (`ingest_vs_echo.py`, `backlog_drain.py`) charge to the collector per report."""

from __future__ import annotations

from urllib.parse import urlsplit

import psutil

from devposture.collector.store.target import DatabaseTarget, PostgresTarget


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of `pids` so far (a process gone counts nothing)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def with_children(pid: int) -> list[int]:
    """`pid` and every process it started (the collector's report writer): the collector's
    CPU is theirs together."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def database_backends(collector_pid: int, target: DatabaseTarget) -> list[int]:
    """The PostgreSQL backends serving the connections of a collector process and its
    children (by their client ports), for their CPU time; none on SQLite."""
    if not isinstance(target, PostgresTarget):
        return []
    import psycopg  # noqa: PLC0415 (the PostgreSQL runs only)

    server_port = urlsplit(target.url).port or 5432
    ports = [
        c.laddr.port for pid in with_children(collector_pid)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == server_port
    ]  # fmt: skip
    with psycopg.connect(target.url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (ports,)
        ).fetchall()
    return [int(row[0]) for row in rows]
