"""Why the enrollment port refused a token, as a sentence the agent words in its reader's
language (sent in trailing metadata, `devposture.net.rpc_status.ERROR_METADATA`, as the admin
port sends its refusals).

The store says why in English (`TokenRejected`, `collector/store/identity.py`); that text stays
the status's details, which an agent of an older version shows as it is. The sentences it can
be are declared here as templates (the catalogs' msgids): a refusal that matches one is sent
with its parameters; any other is sent as its text.
"""

from __future__ import annotations

import re
from functools import cache

from devposture.policy.cli_messages import Said, said

# The store's refusals, word for word, with a `{name}` where they vary.
_TEMPLATES = (
    said("the enrollment token is not known to this collector: check the token file, or create"
         " a new token with `devposture-collector token create`"),
    said("the enrollment token was revoked: ask IT for a new one"),
    said("the enrollment token expired at {time}: ask IT for a new one"
         " (`devposture-collector token create`)"),
    said("the enrollment token was already used up: ask IT for a new one"
         " (`devposture-collector token create`)"),
    said("this device's key belongs to a device IT {status}: enroll with a new key"
         " (`devposture-agent enroll --force`)"),
)  # fmt: skip
# A device's status inside the sentence above (and the report port's, device_refusals.py), in
# the reader's language.
DEVICE_STATUS = {"revoked": said("revoked"), "retired": said("retired")}


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if n % 2 == 0 else f"(?P<{part}>.+?)" for n, part in enumerate(parts)
    )
    return re.compile(regex)


def worded_refusal(text: str) -> Said:
    """The store's refusal `text` as its template and parameters; as it is when none fits."""
    for template in _TEMPLATES:
        found = _pattern(template.english).fullmatch(text)
        if found is not None:
            params: dict[str, str | Said] = dict(found.groupdict())
            if "status" in params:
                params["status"] = DEVICE_STATUS.get(str(params["status"]), params["status"])
            return Said(template.english, params)
    return Said(text, as_is=True)
