"""What `netsh wlan show interfaces` prints in each language, as recorded on real machines.

netsh translates every label and many values. Each table maps the printed text to one
canonical meaning; only texts seen in a recording (tests/fixtures/windows/netsh_wlan, see its
README) or quoted from a real machine are listed, so an unknown translation is a ParseError
and never a guess. Note the traps: in Chinese 密码 ("password") is the *cipher*, and French
prints "Ouvrir" ("to open") for an open network, Spanish "Abierta".
"""

from __future__ import annotations

import re

from devposture.v1 import devposture_pb2 as pb

# Field labels, compared after stripping the padding around them.
LABELS: dict[str, str] = {
    # English
    "Name": "name",
    "Description": "description",
    "State": "state",
    "SSID": "ssid",
    "Authentication": "authentication",
    "Cipher": "cipher",
    # Simplified Chinese (Windows 10 and Windows 11 wordings)
    "名称": "name",
    "描述": "description",
    "说明": "description",
    "状态": "state",
    "身份验证": "authentication",
    "密码": "cipher",
    # French
    "Nom": "name",
    "État": "state",
    "Authentification": "authentication",
    "Chiffrement": "cipher",
    # German ("Status" is also the start of "Status des gehosteten Netzwerks", a different label)
    "Beschreibung": "description",
    "Status": "state",
    "Authentifizierung": "authentication",
    "Verschlüsselungsverfahren": "cipher",
    # Spanish
    "Nombre": "name",
    "Descripción": "description",
    "Estado": "state",
    "Autenticación": "authentication",
    "Cifrado": "cipher",
    # Italian ("Stato" is also the start of "Stato rete ospitata", a different label)
    "Nome": "name",
    "Descrizione": "description",
    "Stato": "state",
    "Autenticazione": "authentication",
    "Crittografia": "cipher",
}

CONNECTED = frozenset({"connected", "已连接", "connecté", "Verbunden", "conectado", "connessa"})
DISCONNECTED = frozenset({"disconnected", "已断开连接", "未连接", "déconnecté"})

# Whole-output messages. "There is no wireless interface" is a fact about the computer;
# 系统上没有无线接口 is the Chinese wording a Ruby netsh wrapper matches on Chinese Windows.
NO_INTERFACE = (
    "There is no wireless interface on the system.",
    "系统上没有无线接口",
)
# The service's name is not translated, so it identifies the message in any language.
SERVICE_STOPPED_MARKER = "(wlansvc)"
# Windows 11 24H2 refuses WLAN queries to programs without location permission. The message
# is translated ("Network shell commands need location permission…", Chinese "网络 shell 命令
# 需要位置权限…"), but two parts of it are not: the Settings page's URI, and the name of the
# refused call with its error code 5 (ERROR_ACCESS_DENIED), "Function WlanQueryInterface returns
# error 5" in English, "功能 WlanQueryInterface 返回错误 5" in Chinese (recordings:
# tests/fixtures/windows/netsh_wlan, README).
LOCATION_DENIED_URI = "ms-settings:privacy-location"
LOCATION_DENIED_CALL = re.compile(r"WlanQueryInterface[^\n\d]*\b5\b")

# Authentication values, normalised: lower case, spaces and hyphens removed, a trailing
# "(H2E)"-style note dropped.
AUTHENTICATION: dict[str, pb.WifiSecurity.ValueType] = {
    "open": pb.WIFI_SECURITY_OPEN,
    "开放": pb.WIFI_SECURITY_OPEN,
    "开放式": pb.WIFI_SECURITY_OPEN,
    "ouvrir": pb.WIFI_SECURITY_OPEN,
    "abierta": pb.WIFI_SECURITY_OPEN,
    "shared": pb.WIFI_SECURITY_WEP,
    "owe": pb.WIFI_SECURITY_OWE,
    "wpapersonal": pb.WIFI_SECURITY_WPA_PERSONAL,
    "wpapsk": pb.WIFI_SECURITY_WPA_PERSONAL,
    "wpa2personal": pb.WIFI_SECURITY_WPA2_PERSONAL,
    "wpa2psk": pb.WIFI_SECURITY_WPA2_PERSONAL,
    "wpa2个人": pb.WIFI_SECURITY_WPA2_PERSONAL,
    "wpa2personnel": pb.WIFI_SECURITY_WPA2_PERSONAL,
    "wpa3personal": pb.WIFI_SECURITY_WPA3_PERSONAL,
    "wpa3sae": pb.WIFI_SECURITY_WPA3_PERSONAL,
    "wpaenterprise": pb.WIFI_SECURITY_WPA_ENTERPRISE,
    # Chinese WPA and WPA3 wordings ("WPA - 个人", "WPA3 - 企业"), as a real Chinese Windows 10
    # netsh lists them in `netsh wlan show drivers` (the same words `show interfaces` prints
    # for the network in use: both print "WPA2 - 个人"; fixture drivers-zh-win10-19043-*).
    "wpa个人": pb.WIFI_SECURITY_WPA_PERSONAL,
    "wpa企业": pb.WIFI_SECURITY_WPA_ENTERPRISE,
    "wpa3个人": pb.WIFI_SECURITY_WPA3_PERSONAL,
    "wpa3企业": pb.WIFI_SECURITY_WPA3_ENTERPRISE,
    "wpa2enterprise": pb.WIFI_SECURITY_WPA2_ENTERPRISE,
    "wpa2企业": pb.WIFI_SECURITY_WPA2_ENTERPRISE,
    "wpa3enterprise": pb.WIFI_SECURITY_WPA3_ENTERPRISE,
}

# An "Open" authentication with a WEP cipher is a WEP network (open-system WEP). Compared
# lower case with spaces and hyphens removed: Chinese netsh prints "WEP-40bit" and "WEP-104 位".
WEP_CIPHERS = frozenset({"wep", "wep40", "wep104", "wep40bit", "wep104位"})
