"""Every word `status` and the desktop notifications show, in Chinese and in English.

One frozen dataclass holds a language's words, and each language is one instance of it: a
word missing from either is a type error (`make typecheck`) and a TypeError at import, never
a blank or a Python object on the employee's screen. Texts that take values are functions of
them. The policy's own texts (titles, remedies) and the collector's reasons come with the
verdicts; these are the agent's frame around them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devposture.agent.employee.language import Lang
from devposture.policy.reasons import STATES, state_word


def _states(lang: Lang) -> dict[str, str]:
    """The states' names from the catalogs (`devposture.policy.reasons.state_word`); GRACE
    reads as failing, its deadline said after it (`status.state_text`)."""
    names = {state: state_word(state, lang) for state in STATES}
    return names | {"GRACE": names["FAIL"]}


@dataclass(frozen=True)
class Words:
    states: dict[str, str]  # PASS, FAIL, UNKNOWN, EXEMPT, STALE, GRACE
    grace_until: Callable[[str], str]
    grace_ended: Callable[[str], str]
    what_to_do: str
    on_this_computer: str
    judged_at: Callable[[str], str]
    local_check: str
    all_in_order: str
    failing: Callable[[int], str]
    unknown: Callable[[int], str]
    waiting: Callable[[int, str], str]
    dropped: Callable[[int], str]
    app_name: str


ZH = Words(
    states=_states("zh"),
    grace_until=lambda when: f"宽限期至 {when}",
    grace_ended=lambda when: f"宽限期已于 {when} 结束",
    what_to_do="怎么办",
    on_this_computer="在这台电脑上",
    judged_at=lambda when: f"本机合规状态(公司服务器于 {when} 判定)",
    local_check="本机合规状态(本地检查,尚未经公司服务器判定)",
    all_in_order="全部合规。",
    failing=lambda n: f"有 {n} 项不合规,请按上面的“怎么办”处理。",
    unknown=lambda n: f"有 {n} 项无法判断,IT 会查看原因。",
    waiting=lambda n, oldest: f"{n} 份报告等待发送(最早 {oldest}),连接公司网络后会自动发送。",
    dropped=lambda n: f"离线期间存储已满,{n} 份报告未能保留;IT 能看到这一情况。",
    app_name="设备合规检查",
)

EN = Words(
    states=_states("en"),
    grace_until=lambda when: f"grace until {when}",
    grace_ended=lambda when: f"grace ended {when}",
    what_to_do="What to do",
    on_this_computer="On this computer",
    judged_at=lambda when: (
        f"Compliance of this computer, as the company's collector judged it at {when}"
    ),
    local_check="Compliance of this computer: a local check, not yet judged by the company's"
    " collector",
    all_in_order="Everything is in order.",
    failing=lambda n: f'{n} item(s) failing: see "What to do" above.',
    unknown=lambda n: f"{n} item(s) cannot be told; IT will look into why.",
    waiting=lambda n, oldest: (
        f"{n} report(s) waiting to be sent (the oldest from {oldest});"
        " they go by themselves once the company's collector can be reached."
    ),
    dropped=lambda n: (
        f"{n} report(s) could not be kept while offline (the outbox was full); IT can see this."
    ),
    app_name="Device compliance",
)

WORDS: dict[Lang, Words] = {"zh": ZH, "en": EN}
