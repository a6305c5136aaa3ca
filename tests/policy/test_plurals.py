"""English counts read "1 device" and "3 devices" wherever a sentence keeps "(s)" in its msgid
for the translator: the command lines' sentences and errors, the ones a remote command line
words from the admin port, and the agent's `status`; the Chinese has no plural and reads the
same for one and for many."""

from __future__ import annotations

from devposture.agent.employee.words import EN, ZH
from devposture.collector.admin.commands import CommandError
from devposture.policy.cli_messages import Said, Told, said
from devposture.policy.plurals import in_english, settled

CLONES = "{count} device(s) suspected of being cloned: see `devposture-collector device show ID`"


def test_a_count_settles_its_noun_and_nothing_else() -> None:
    assert settled("{count} device(s) left", {"count": 1}) == "{count} device left"
    assert settled("{count} device(s) left", {"count": 3}) == "{count} devices left"
    assert settled("{count} device(s) left", {"count": 0}) == "{count} devices left"
    # A command line writes its counts as text, grouped by thousands.
    assert settled("{more} more row(s)", {"more": "1"}) == "{more} more row"
    assert settled("{more} more row(s)", {"more": "25,000"}) == "{more} more rows"
    # Not a count (a word, a flag, a missing value): the "(s)" stays for the reader to settle.
    assert settled("{name} device(s)", {"name": "PC-10"}) == "{name} device(s)"
    assert settled("{count} device(s)", {"count": True}) == "{count} device(s)"
    assert settled("after the bundle(s) in between", {}) == "after the bundle(s) in between"
    assert settled("profile(s): {profiles}", {"profiles": ["Public"]}) == "profile: {profiles}"
    assert in_english("token {token}: {uses} use(s)", token="t1", uses=1) == "token t1: 1 use"


def test_a_sentence_counts_in_english_and_reads_the_same_in_chinese() -> None:
    one, three = said(CLONES, count=1), said(CLONES, count=3)
    assert one.worded("en").startswith("1 device suspected of being cloned: see")
    assert three.worded("en").startswith("3 devices suspected of being cloned: see")
    assert one.worded("zh").startswith("1 台设备疑似被复制：请查看")
    assert three.worded("zh").startswith("3 台设备疑似被复制：请查看")
    # The msgid keeps its "(s)": the catalogs are looked up by it.
    assert one.english == CLONES and "(s)" in CLONES
    # What scripts and logs read is the English, settled too.
    assert str(Told(one)) == one.worded("en")
    assert str(CommandError(CLONES, count=1)).startswith("1 device suspected")


def test_a_value_is_never_settled_only_the_template() -> None:
    named = said("{count} device(s) in group {group}", count=1, group="2 guest(s)")
    assert named.worded("en") == "1 device in group 2 guest(s)"


def test_a_sentence_from_the_admin_port_counts_on_the_remote_command_line() -> None:
    """The collector sends the template and its parameters (`Said.data`); the remote command
    line words them, and counts them, in its reader's language."""
    sent = said("wrote {path} ({count} row(s), {format})", path="out.csv", count="1",
                format="csv")  # fmt: skip
    received = Said.of_data(sent.data())
    assert received is not None
    assert received.worded("en") == "wrote out.csv (1 row, csv)"
    assert received.worded("zh") == "已写入 out.csv（1 行，csv）"
    many = Said.of_data(said("wrote {path} ({count} row(s), {format})", path="out.csv",
                             count="1,204", format="csv").data())  # fmt: skip
    assert many is not None and many.worded("en") == "wrote out.csv (1,204 rows, csv)"


def test_the_agents_status_counts_in_english() -> None:
    assert EN.failing(1) == '1 item failing: see "What to do" above.'
    assert EN.failing(2).startswith("2 items failing")
    assert EN.unknown(1).startswith("1 item cannot be told")
    assert EN.dropped(1).startswith("1 report could not be kept")
    assert EN.dropped(4).startswith("4 reports could not be kept")
    assert EN.waiting(1, "24 Nov 17:30").startswith("1 report waiting to be sent since 24 Nov")
    assert ZH.failing(1) == "有 1 项不合规，请按上面的“怎么办”处理。"
    assert ZH.waiting(2, "11月24日 17:30").startswith("2 份报告等待发送（最早 11月24日 17:30）")
