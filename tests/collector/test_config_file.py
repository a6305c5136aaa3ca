"""collector.toml is read as strictly as policy.toml: an unknown section or key, a value of the
wrong kind and a missing key are each refused with its line and its fix, all in one go."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from devposture.collector.config import CONFIG_NAME, SCHEMA, ConfigError, load, render_default
from devposture.collector.datadir import initialize
from devposture.config_file import example
from devposture.policy.toml_lines import line_of
from tests.databases import collector_database


def _data(tmp_path: Path, edit: str = "", old: str = "", new: str = "") -> tuple[Path, str]:
    """A data folder whose collector.toml had `old` replaced by `new` and `edit` appended."""
    data = tmp_path / "collector"
    initialize(data, "127.0.0.1", database=collector_database())
    path = data / CONFIG_NAME
    text = path.read_text()
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    text += edit
    path.write_text(text)
    return data, text


def _line(text: str, needle: str) -> int:
    (found,) = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith(needle)]
    return found


def _refused(data: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        load(data)
    return str(refused.value)


def test_a_misspelt_key_is_refused_with_its_line_and_the_right_name(tmp_path: Path) -> None:
    data, text = _data(tmp_path, old="drain_seconds = 5\n", new="drain_second = 5\n")
    message = _refused(data)
    line = _line(text, "drain_second = 5")
    assert message == (
        f"{data / CONFIG_NAME}:{line}: [server] drain_second is not a setting of [server]:"
        " did you mean drain_seconds? ([server] takes drain_seconds, presence_seconds,"
        " report_writer)"
    )


def test_an_unknown_section_a_stray_key_and_a_key_in_the_wrong_section_are_refused(
    tmp_path: Path,
) -> None:
    data, text = _data(
        tmp_path, edit='\n[serve]\nmode = "fast"\n',
        old="[listen]\n", new="device_call_burst = 10\n\n[listen]\nreport_port_x = 1\n",
    )  # fmt: skip
    message = _refused(data)
    path = data / CONFIG_NAME
    assert f"{path}:{_line(text, '[serve]')}: [serve] is not a section of collector.toml:" \
        " did you mean [server]?" in message  # fmt: skip
    assert f"{path}:{_line(text, 'device_call_burst = 10')}: device_call_burst is outside any" \
        " section: move it under [limits]" in message  # fmt: skip
    assert f"{path}:{_line(text, 'report_port_x')}: [listen] report_port_x is not a setting" \
        " of [listen]: did you mean report_port?" in message  # fmt: skip
    assert message.endswith(f"{path}: 3 problems; fix each, then run again")


def test_a_setting_under_another_section_is_told_where_it_belongs(tmp_path: Path) -> None:
    data, text = _data(tmp_path, old="[web]\n", new="[web]\ndrain_seconds = 3\n")
    assert f":{_line(text, 'drain_seconds = 3')}: [web] drain_seconds is not a setting of" \
        " [web]: it belongs under [server]; move it there" in _refused(data)  # fmt: skip


@pytest.mark.parametrize(
    ("section", "old", "new", "message"),
    [
        ("[web]", "port = 7446\n", 'port = "7446"\n',
         "[web] port must be a whole number, not '7446': write e.g. `port = 7446`"),
        ("[metrics]", "enabled = true\n", 'enabled = "yes"\n',
         "[metrics] enabled must be true or false, not 'yes': write e.g. `enabled = true`"),
        ("[admin]", 'host = "127.0.0.1"\n', "host = 127\n",
         '[admin] host must be a text in quotes, not 127: write e.g. `host = "127.0.0.1"`'),
        ("[limits]", "device_call_burst = 30\n", "device_call_burst = 2.5\n",
         "[limits] device_call_burst must be a whole number, not 2.5: write e.g."
         " `device_call_burst = 30`"),
        ("[enrollment]", "token_ttl_hours = 24\n", 'token_ttl_hours = "24h"\n',
         "[enrollment] token_ttl_hours must be a number, not '24h': write e.g."
         " `token_ttl_hours = 24`"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_kind_is_refused_with_its_line_and_an_example(
    tmp_path: Path, section: str, old: str, new: str, message: str
) -> None:
    database = collector_database()
    template = render_default("127.0.0.1", 7443, 7444, database=database)
    start = template.index(section)
    at = template.index(old, start)  # the key in that section, not a namesake elsewhere
    data = tmp_path / "collector"
    initialize(data, "127.0.0.1", database=database)
    text = (data / CONFIG_NAME).read_text()
    assert text == template
    text = text[:at] + new + text[at + len(old) :]
    (data / CONFIG_NAME).write_text(text)
    line = text[:at].count("\n") + 1
    assert _refused(data) == f"{data / CONFIG_NAME}:{line}: {message}"


def test_a_missing_key_names_its_section_s_line_and_what_to_add(tmp_path: Path) -> None:
    data, text = _data(tmp_path, old=' to serve the whole network.\nhost = "127.0.0.1"\n',
                       new=" to serve the whole network.\n")  # fmt: skip
    assert _refused(data) == (
        f"{data / CONFIG_NAME}:{_line(text, '[listen]')}: [listen] host is missing: add"
        ' `host = "127.0.0.1"` under [listen]'
    )


def test_a_value_out_of_range_and_a_toml_mistake_name_their_line(tmp_path: Path) -> None:
    data, text = _data(tmp_path / "a", old="port = 7446\n", new="port = 70000\n")
    assert f":{_line(text, 'port = 70000')}: [web] port must be between 0 and 65535, not 70000" \
        in _refused(data)  # fmt: skip
    data, text = _data(tmp_path / "b", old="drain_seconds = 5\n", new="drain_seconds = 5s\n")
    line = _line(text, "drain_seconds = 5s")
    assert re.search(rf"not valid TOML \(.*line {line}\b.*\): fix that line", _refused(data))


def test_the_report_writer_is_a_process_unless_told_thread(tmp_path: Path) -> None:
    data, _ = _data(tmp_path / "a")
    assert load(data).report_writer == "process"
    data, _ = _data(tmp_path / "b", old='report_writer = "process"\n',
                    new='report_writer = "thread"\n')  # fmt: skip
    assert load(data).report_writer == "thread"
    data, text = _data(tmp_path / "c", old='report_writer = "process"\n',
                       new='report_writer = "fork"\n')  # fmt: skip
    line = _line(text, 'report_writer = "fork"')
    assert f":{line}: [server] report_writer must be 'process' or 'thread', not 'fork'" \
        in _refused(data)  # fmt: skip


def test_the_presence_round_is_thirty_seconds_unless_told_within_one_to_300(
    tmp_path: Path,
) -> None:
    """[server] presence_seconds: how soon a dead process's share of the rate limit comes
    back (three rounds), against one write a round from every process."""
    data, _ = _data(tmp_path / "a")
    assert load(data).presence_seconds == 30.0
    data, _ = _data(tmp_path / "b", old="presence_seconds = 30\n", new="presence_seconds = 2.5\n")
    assert load(data).presence_seconds == 2.5
    for name, wrong in (("c", "0.5"), ("d", "301")):
        data, text = _data(tmp_path / name, old="presence_seconds = 30\n",
                           new=f"presence_seconds = {wrong}\n")  # fmt: skip
        line = _line(text, f"presence_seconds = {wrong}")
        assert f":{line}: [server] presence_seconds must be between 1 and 300 seconds, not" \
            f" {wrong}; set e.g. presence_seconds = 30" in _refused(data)  # fmt: skip


def test_the_dashboard_reads_chinese_unless_told_english_and_refuses_a_third(
    tmp_path: Path,
) -> None:
    """[web] language: the site's own, when neither its reader nor their browser decides."""
    data, _ = _data(tmp_path / "a")
    assert load(data).web_language == "zh"
    data, _ = _data(tmp_path / "b", old='language = "zh"\n', new='language = "en"\n')
    assert load(data).web_language == "en"
    data, text = _data(tmp_path / "c", old='language = "zh"\n', new='language = "zh-TW"\n')
    line = _line(text, 'language = "zh-TW"')
    assert f":{line}: [web] language must be 'zh' or 'en', not 'zh-TW'" in _refused(data)


def test_the_file_init_writes_holds_exactly_the_schema_with_its_defaults() -> None:
    """The examples a refusal shows are what `init` writes, and every key init writes is
    checked: the template and the schema cannot drift apart."""
    written = tomllib.loads(render_default("127.0.0.1", 7443, 7444))
    assert {s: set(keys) for s, keys in written.items()} == {
        s: set(keys) for s, keys in SCHEMA.items()
    }
    for section, keys in SCHEMA.items():
        for key, setting in keys.items():
            default = setting.default  # a list's is held as a tuple
            assert written[section][key] == (
                list(default) if isinstance(default, tuple) else default
            ), (section, key)
            if setting.sample is None:  # else the example shows what to write instead of ""
                assert tomllib.loads(example(key, setting))[key] == written[section][key]


def test_an_older_file_without_the_later_sections_still_loads(tmp_path: Path) -> None:
    data, _ = _data(tmp_path)
    path = data / CONFIG_NAME
    text = path.read_text()
    for section in ("[server]", "[admin]", "[metrics]", "[web]", "[logging]"):
        start = text.index(section)
        end = text.index("\n[", start + 1)
        text = text[:start] + text[end + 1 :]
    path.write_text(text)
    config = load(data)
    assert (config.drain_seconds, config.web_port, config.admin_port) == (5.0, 7446, 7445)
    assert config.web_language == "zh"


def test_a_line_is_found_in_its_own_table_only() -> None:
    text = "[admin]\nport = 1\n\n[web]\nhost = 'x'\n\n[metrics]\nport = 3\n"
    assert line_of(text, ("admin", "port")) == 2
    assert line_of(text, ("metrics", "port")) == 8
    assert line_of(text, ("web", "port")) == 4  # missing there: its table, not [metrics]' port
    assert line_of(text, ("web",)) == 4
    assert line_of(text, ("nowhere", "port")) is None
    assert line_of("port = 1\n[web]\n", ("port",)) == 1
    assert line_of("[web]\nport = 1\n", ("port",)) is None
