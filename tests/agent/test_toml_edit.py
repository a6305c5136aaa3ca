"""Setting agent.toml's keys in place: what IT wrote by hand (comments, other keys, their
order) stays; a layout that cannot be edited safely is refused, never guessed at."""

from __future__ import annotations

import tomllib

import pytest

from devposture.agent.toml_edit import TomlEditError, set_values

HAND_WRITTEN = """\
# IT's own file: keep this comment
[collector]
# the old collector
addresses = ["old.corp.example:7443"]  # decommissioned in 2027

[logging]
level = "info"
"""


def test_a_written_key_is_replaced_where_it_is_and_the_rest_stays() -> None:
    result = set_values(HAND_WRITTEN, {("collector", "addresses"): ("new.corp.example:7443",)})
    assert result == HAND_WRITTEN.replace(
        '["old.corp.example:7443"]  # decommissioned in 2027', '["new.corp.example:7443"]'
    )


def test_a_value_over_several_lines_is_replaced_whole() -> None:
    text = '[collector]\naddresses = [\n  "a:1",\n  "b:2",\n]\nca_fingerprint = "x"\n'
    result = set_values(text, {("collector", "addresses"): ("c:3",)})
    assert result == '[collector]\naddresses = ["c:3"]\nca_fingerprint = "x"\n'


def test_a_missing_key_goes_under_its_table_and_a_missing_table_at_the_end() -> None:
    result = set_values(HAND_WRITTEN, {
        ("collector", "ca_fingerprint"): "sha256:" + "ab" * 32,
        ("network", "https_proxy"): "http://proxy:3128",
    })  # fmt: skip
    parsed = tomllib.loads(result)
    assert parsed["collector"]["ca_fingerprint"] == "sha256:" + "ab" * 32
    assert parsed["collector"]["addresses"] == ["old.corp.example:7443"]
    assert parsed["network"] == {"https_proxy": "http://proxy:3128"}
    assert result.startswith("# IT's own file: keep this comment\n[collector]\nca_fingerprint")
    assert result.endswith('\n\n[network]\nhttps_proxy = "http://proxy:3128"\n')


def test_an_empty_file_and_one_without_a_final_newline() -> None:
    assert set_values("", {("state", "folder"): "/srv/a"}) == '[state]\nfolder = "/srv/a"\n'
    assert tomllib.loads(set_values('[logging]\nlevel = "info"', {("state", "folder"): "/b"})) == {
        "logging": {"level": "info"}, "state": {"folder": "/b"},
    }  # fmt: skip


def test_texts_are_escaped_and_kept_as_written() -> None:
    tricky = 'C:\\ProgramData\\devposture "state" 微信'
    result = set_values("", {("state", "folder"): tricky, ("backups", "folders"): ("~/备份",)})
    expected = {"state": {"folder": tricky}, "backups": {"folders": ["~/备份"]}}
    assert tomllib.loads(result) == expected
    assert "微信" in result  # readable, not \\u-escaped


def test_a_key_of_the_same_name_in_another_table_is_left_alone() -> None:
    text = '[backups]\nfolders = ["/a"]\n\n[state]\nfolder = "/x"\n'
    result = set_values(text, {("state", "folder"): "/y"})
    assert tomllib.loads(result) == {"backups": {"folders": ["/a"]}, "state": {"folder": "/y"}}


@pytest.mark.parametrize(
    "text",
    [
        'collector = { addresses = ["a:1"] }\n',  # an inline table
        'collector.addresses = ["a:1"]\n',  # a dotted key
    ],
)
def test_a_layout_that_cannot_be_edited_safely_is_refused(text: str) -> None:
    with pytest.raises(TomlEditError, match=r"cannot be edited safely|is a value, not a table"):
        set_values(text, {("collector", "addresses"): ("b:2",)})


def test_a_file_that_is_not_toml_is_refused() -> None:
    with pytest.raises(TomlEditError, match="not valid TOML"):
        set_values("[collector\n", {("collector", "addresses"): ("b:2",)})
