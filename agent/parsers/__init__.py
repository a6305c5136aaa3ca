"""Pure parsers: raw text (or bytes) recorded from a tool or a file in, typed facts out.

No parser does I/O, reads the clock or looks at the environment, so each is tested on real
recorded outputs (tests/fixtures/<os>/). A parser that cannot understand its input raises
`ParseError`; it never returns a made-up default, because the probe must then report the fact
as unknown rather than as a pass (DESIGN principle 2).
"""

from devposture.agent.parsers.errors import ParseError

__all__ = ["ParseError"]
