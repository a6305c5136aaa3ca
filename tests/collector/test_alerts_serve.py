"""The [alerts] section of collector.toml, read strictly, and `serve` sending its digest: a real
`devposture-collector serve` process whose collector.toml names a webhook on loopback sends
it the collector's own certificates as expiring (the warning set beyond their lifetimes)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devposture.collector.config import CONFIG_NAME, ConfigError, load
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from tests.collector.alert_receivers import http_receiver
from tests.collector.test_exclusive_serve import _configure
from tests.databases import collector_database
from tests.ports import free_ports

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")
DEADLINE_SECONDS = 90


def _folder(tmp_path: Path, alerts: dict[str, str]) -> Path:
    """A data folder whose collector.toml's [alerts] has `alerts` (key -> TOML value)."""
    data = tmp_path / "collector"
    initialize(data, "127.0.0.1", database=collector_database())
    _set(data, alerts)
    return data


def _set(data: Path, alerts: dict[str, str]) -> None:
    path = data / CONFIG_NAME
    text = path.read_text(encoding="utf-8")
    for key, value in alerts.items():
        text, found = re.subn(rf"(?ms)^(\[alerts\].*?^){key} = .*?$", rf"\g<1>{key} = {value}",
                              text, count=1)  # fmt: skip
        assert found == 1, key
    path.write_text(text, encoding="utf-8")


def test_no_alerts_section_sends_nothing_and_every_setting_has_a_default(tmp_path: Path) -> None:
    data = _folder(tmp_path, {})
    path = data / CONFIG_NAME
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("\n[alerts]")] + "\n", encoding="utf-8")
    alerts = load(data).alerts
    assert alerts.channels == ()
    assert (alerts.digest_minutes, alerts.repeat_hours) == (15, 24)
    assert (alerts.certificate_warning_days, alerts.disk_warning_percent) == (30, 90)


def test_the_channels_are_read_with_their_files_in_the_data_folder(tmp_path: Path) -> None:
    data = _folder(tmp_path, {
        "wecom_webhook_file": '"secrets/wecom.url"', "webhook_url": '"https://hooks.example/d"',
        "smtp_host": '"smtp.example.com"', "smtp_from": '"devposture@example.com"',
        "smtp_to": '["it@example.com", "soc@example.com"]', "smtp_user": '"devposture"',
        "smtp_password_file": '"secrets/smtp.password"', "digest_minutes": "5",
    })  # fmt: skip
    alerts = load(data).alerts
    assert alerts.channels == ("wecom", "webhook", "email")
    assert alerts.wecom_webhook_file == data / "secrets" / "wecom.url"
    assert alerts.smtp_to == ("it@example.com", "soc@example.com")
    assert alerts.digest_minutes == 5


@pytest.mark.parametrize(
    ("alerts", "key", "said"),
    [
        ({"digest_minutes": "0"}, "digest_minutes",
         "[alerts] digest_minutes must be at least 1, not 0"),
        ({"smtp_security": '"ssl"'}, "smtp_security",
         "[alerts] smtp_security must be 'starttls', 'tls', 'none', not 'ssl'"),
        ({"smtp_host": '"smtp.example.com"', "smtp_from": '"a@example.com"'}, "smtp_to",
         '[alerts] smtp_host is set, so smtp_to is needed too: write e.g. `smtp_to ='
         ' ["it-team@example.com"]`'),
        ({"webhook_url": '"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"'},
         "webhook_url",
         "[alerts] webhook_url holds a secret: put the signing secret in webhook_secret_file"),
        ({"webhook_url": '"ftp://example.com/x"'}, "webhook_url",
         "[alerts] webhook_url must be an http:// or https:// address"),
        ({"disk_warning_percent": "120"}, "disk_warning_percent",
         "[alerts] disk_warning_percent must be between 1 and 100, not 120"),
    ],
)  # fmt: skip
def test_a_wrong_alert_setting_is_refused_with_its_line_and_fix(
    tmp_path: Path, alerts: dict[str, str], key: str, said: str
) -> None:
    data = _folder(tmp_path, alerts)
    with pytest.raises(ConfigError) as refused:
        load(data)
    text = (data / CONFIG_NAME).read_text(encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(f"{key} ="))
    assert f":{line}: {said}" in str(refused.value)


def test_an_unknown_alert_key_is_refused_with_the_right_name(tmp_path: Path) -> None:
    data = _folder(tmp_path, {})
    path = data / CONFIG_NAME
    path.write_text(path.read_text(encoding="utf-8") + "digest_minute = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load(data)
    assert "[alerts] digest_minute is not a setting of [alerts]: did you mean digest_minutes?" in (
        str(refused.value)
    )


def _recorded_sent(data: Path) -> bool:
    reader = Store.open_reader(load(data).database)
    try:
        return [state for _, state, _, _ in reader.alerts.deliveries()] == ["sent"]
    finally:
        reader.close()


def test_serve_sends_the_digest_to_the_webhook_named_in_collector_toml(tmp_path: Path) -> None:
    """Waits for the receiver to get the request and the collector to record it sent, with a
    generous deadline (the first round runs as `serve` starts), or for `serve` to end. (Its
    drain is 0 s: a stop before the record would leave the attempt, to be sent again.)"""
    with http_receiver() as hook:
        data = tmp_path / "collector"
        _configure(data, free_ports(5))  # five ports free now (the receiver's is taken)
        _set(data, {"webhook_url": f'"{hook.url}/hooks/devposture"',
                    "certificate_warning_days": "100000"})  # fmt: skip
        serving = subprocess.Popen(
            [COLLECTOR, "serve", "--data", str(data)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not (hook.arrived.is_set() and _recorded_sent(data)):
                if serving.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            serving.send_signal(signal.SIGTERM)
            _, err = serving.communicate(timeout=60)
        assert hook.arrived.is_set(), err[-3000:]
        (request,) = hook.received
    document = request.json()
    assert document["schema"] == "devposture.alert-digest" and document["version"] == 1
    assert sorted((i["kind"], i["certificate"], i["collector"]) for i in document["items"]) == [
        ("certificate", "ca", socket.gethostname()),
        ("certificate", "server", socket.gethostname()),
    ]
    assert "alerts: digest sent to webhook (2 item(s))" in err
    assert serving.returncode == 0, err[-3000:]
