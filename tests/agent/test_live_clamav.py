"""On this machine: ClamAV installed without any signature database is present, not healthy.

`.ci/run` installs Debian's clamav and never runs freshclam (the CI machine cannot reach the
signature mirrors anyway), so this runs against the real package in CI; on a developer
machine without ClamAV it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devposture.agent.collect import build_report
from devposture.agent.host import LiveHost
from devposture.agent.probes import ProbeConfig
from devposture.policy.checks import State, evaluate
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb

CLAMAV_DB = Path("/var/lib/clamav")


def _require_clamav_without_signatures() -> None:
    if shutil.which("clamscan") is None:
        message = "ClamAV is not installed here (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if CLAMAV_DB.is_dir() and any(p.suffix in {".cvd", ".cld"} for p in CLAMAV_DB.iterdir()):
        pytest.skip("this machine has ClamAV signatures; the case needs a machine without them")


def test_clamav_without_signatures_is_present_but_not_healthy() -> None:
    _require_clamav_without_signatures()
    report = build_report(LiveHost(), ProbeConfig())
    clamav = [p for p in report.antivirus.products if p.name == "ClamAV"]
    assert len(clamav) == 1, report.antivirus
    (product,) = clamav
    assert product.HasField("signatures_up_to_date") and not product.signatures_up_to_date
    assert not product.HasField("signatures_updated_at")
    errors = [e for e in report.errors if e.fact == pb.FACT_ANTIVIRUS]
    assert any(
        e.code == pb.PROBE_ERROR_CODE_NO_SOURCE and "no signature database" in e.message
        for e in errors
    )
    verdict = {c.check_id: v for c, v in evaluate(report, datetime.now(UTC))}["antivirus"]
    assert verdict.state is State.FAIL
    assert "ClamAV: no signature database" in render(verdict.reason, "en", UTC)
