"""`devposture-collector token create --bundle` as a real process, on the collector machine and
over the admin port: one value on standard output that holds the addresses, the CA pin and a
token the collector knows; its expiry in Beijing time, its uses and where it goes on standard
error; and a value that could not work (a loopback default, a name not on the certificate)
refused before any token is made."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from devposture.net.address import CollectorAddress
from devposture.net.enrollment_value import BEIJING, parse_enrollment_value
from tests.e2e.conftest import COLLECTOR, CollectorProcess, run


def _token_ids(c: CollectorProcess) -> list[str]:
    done = run(COLLECTOR, "token", "list", "--data", str(c.data), "--format", "json")
    assert done.returncode == 0, done.stderr
    return [t["token"] for t in json.loads(done.stdout)]


def _check_value(c: CollectorProcess, out: str, err: str, addresses: list[str], uses: int) -> (
    str
):  # fmt: skip
    """The value printed is whole, names `addresses` and `c`'s CA, and its token is known."""
    assert len(out.splitlines()) == 1 and out.startswith("dpe1.")
    value = parse_enrollment_value(out)
    assert value.collectors == tuple(CollectorAddress.parse(a) for a in addresses)
    assert value.ca_fingerprint == c.fingerprint and value.uses == uses
    token_id = value.token.split("_")[1]
    assert token_id in _token_ids(c)
    assert value.expires.utcoffset() == dt.timedelta(hours=8)
    shown = value.expires.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    assert f"expires {shown} (UTC+08:00)" in err
    assert f"enrollment value for token {token_id}: enrolls {uses} devices" in err
    assert "/etc/devposture/enroll.token (owner root, mode 0600)" in err
    assert value.token not in err and out.strip() not in err
    return token_id


def test_a_bundle_is_made_on_the_collector_machine(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    addresses = [f"127.0.0.1:{c.enroll_port}", f"localhost:{c.enroll_port}"]
    done = run(
        COLLECTOR, "token", "create", "--bundle", "--uses", "50", "--ttl", "72",
        "--data", str(c.data), *(x for a in addresses for x in ("--enroll-address", a)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    token_id = _check_value(c, done.stdout, done.stderr, addresses, 50)
    expires = parse_enrollment_value(done.stdout).expires
    now = dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=71) < expires - now <= dt.timedelta(hours=72)
    audit = run(COLLECTOR, "audit", "log", "--data", str(c.data), "--format", "json")
    (entry,) = [e for e in json.loads(audit.stdout) if "as an enrollment value" in e["message"]]
    assert token_id in entry["message"] and "dpt_" not in json.dumps(entry)


def test_a_loopback_default_is_refused_and_no_token_made(
    collector_process: CollectorProcess,
) -> None:
    c = collector_process
    before = _token_ids(c)
    done = run(COLLECTOR, "token", "create", "--bundle", "--data", str(c.data))
    assert done.returncode == 1 and done.stdout == ""
    assert "[listen] host is '127.0.0.1', which agents on other computers cannot use" in (
        done.stderr
    )
    assert "--enroll-address HOST:PORT" in done.stderr
    assert "--enroll-address 127.0.0.1:7443 says that the agents run on this machine" in (
        done.stderr
    )
    unlisted = run(COLLECTOR, "token", "create", "--bundle", "--data", str(c.data),
                   "--enroll-address", "collector.corp.example:7443")  # fmt: skip
    assert unlisted.returncode == 1 and unlisted.stdout == ""
    assert "its certificate lists only" in unlisted.stderr
    assert "tls rotate --san collector.corp.example" in unlisted.stderr
    bare = run(COLLECTOR, "token", "create", "--data", str(c.data),
               "--enroll-address", f"127.0.0.1:{c.enroll_port}")  # fmt: skip
    assert bare.returncode == 1 and "add --bundle" in bare.stderr
    assert _token_ids(c) == before


def test_a_bundle_is_made_over_the_admin_port(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    added = run(COLLECTOR, "admin", "add", "Li Wei (IT)", "--role", "admin", "--data", str(c.data))
    assert added.returncode == 0, added.stderr
    credential = tmp_path / "admin.credential"
    credential.write_text(added.stdout)
    credential.chmod(0o600)
    remote = ["--collector", f"127.0.0.1:{c.admin_port}", "--ca-fingerprint", c.fingerprint,
              "--credential-file", str(credential)]  # fmt: skip
    address = f"127.0.0.1:{c.enroll_port}"
    done = run(COLLECTOR, "token", "create", "--bundle", "--uses", "3", "--group", "财务部",
               "--enroll-address", address, *remote)  # fmt: skip
    assert done.returncode == 0, done.stderr
    _check_value(c, done.stdout, done.stderr, [address], 3)
    assert "into group 财务部" in done.stderr
    refused = run(COLLECTOR, "token", "create", "--bundle", *remote)
    assert refused.returncode == 1 and "cannot use to reach this collector" in refused.stderr
    assert re.search(r"dp[te]", refused.stdout) is None
