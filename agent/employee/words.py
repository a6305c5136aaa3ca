"""Every word `status` and the desktop notifications show, in Chinese and in English.

The words come from the message catalogs (`devposture.policy.catalogs`, context
"agent.<name>"); their English, the msgids, is declared here in `ENGLISH`, and `make catalogs`
puts it into the `.po` files. One frozen dataclass holds a language's words and each language
is one instance of it, built from the catalogs: a word missing from either is a type error
and a TypeError at import, never a blank or a Python object on the employee's screen, and a
catalog lacking one fails `tests/policy/test_catalogs.py`. Texts that take values are
functions of them. The policy's own texts (titles, remedies) come with the verdicts and the
reasons are worded by `devposture.policy.reasons`; these are the agent's frame around them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devposture.agent.employee.language import Lang
from devposture.policy.catalogs import translate
from devposture.policy.cli_messages import bracketed
from devposture.policy.plurals import settled
from devposture.policy.reasons import STATES, state_word

ENGLISH: dict[str, str] = {
    "grace_until": "grace until {when}",
    "grace_ended": "grace ended {when}",
    "what_to_do": "What to do",
    "on_this_computer": "On this computer",
    "judged_at": "Compliance of this computer, as the company's collector judged it at {when}",
    "local_check": "Compliance of this computer: a local check, not yet judged by the"
    " company's collector",
    "all_in_order": "Everything is in order.",
    "failing": '{count} item(s) failing: see "What to do" above.',
    "unknown": "{count} item(s) cannot be told; IT will look into why.",
    "waiting": "{count} report(s) waiting to be sent since {oldest}; sending resumes by itself"
    " once the company's collector can be reached.",
    "waiting_undated": "{count} report(s) waiting to be sent; sending resumes by itself once"
    " the company's collector can be reached.",
    "dropped": "{count} report(s) could not be kept while offline (the outbox was full); IT"
    " can see this.",
    "app_name": "Device compliance",
    "labelled": "{label}: {text}",
    "refused": "The company's collector refuses this computer since {when} ({reason}): the"
    " results below are the last it gave, and nothing this computer sends is accepted. Ask"
    " IT.",
    # Refused before the collector judged this computer once: what follows is a local check.
    "refused_unjudged": "The company's collector refuses this computer since {when} ({reason})"
    " and never judged it: the results below are this computer's own check, and nothing it"
    " sends is accepted. Ask IT.",
}


def every_message() -> list[tuple[str, str]]:
    """(context, English msgid) of each word, for the catalogs."""
    return [(f"agent.{name}", english) for name, english in ENGLISH.items()]


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
    waiting_undated: Callable[[int], str]
    dropped: Callable[[int], str]
    app_name: str
    labelled: Callable[[str, str], str]  # "label: text", with the language's own colon
    refused: Callable[[str, str], str]
    refused_unjudged: Callable[[str, str], str]
    # "（UTC+08:00）" / " (UTC+08:00)": the brackets of every time a person reads
    # (`cli_messages.bracketed`, msgctxt "wrap")
    bracketed: Callable[[str], str]


def words_in(lang: Lang) -> Words:
    """The words of `lang`, from its catalog."""
    text = {name: translate(lang, f"agent.{name}", english) for name, english in ENGLISH.items()}

    def counted(name: str, **params: object) -> str:
        """A text with a count: "1 item", "2 items" in English (`plurals`)."""
        return (settled(text[name], params) if lang == "en" else text[name]).format(**params)

    return Words(
        states=_states(lang),
        grace_until=lambda when: text["grace_until"].format(when=when),
        grace_ended=lambda when: text["grace_ended"].format(when=when),
        what_to_do=text["what_to_do"],
        on_this_computer=text["on_this_computer"],
        judged_at=lambda when: text["judged_at"].format(when=when),
        local_check=text["local_check"],
        all_in_order=text["all_in_order"],
        failing=lambda n: counted("failing", count=n),
        unknown=lambda n: counted("unknown", count=n),
        waiting=lambda n, oldest: counted("waiting", count=n, oldest=oldest),
        waiting_undated=lambda n: counted("waiting_undated", count=n),
        dropped=lambda n: counted("dropped", count=n),
        app_name=text["app_name"],
        labelled=lambda label, said: text["labelled"].format(label=label, text=said),
        refused=lambda when, reason: text["refused"].format(when=when, reason=reason),
        refused_unjudged=lambda when, reason: text["refused_unjudged"].format(
            when=when, reason=reason
        ),
        bracketed=lambda text: bracketed(text, lang),
    )


ZH = words_in("zh")
EN = words_in("en")
WORDS: dict[Lang, Words] = {"zh": ZH, "en": EN}
