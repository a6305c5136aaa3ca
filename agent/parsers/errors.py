"""The one exception every parser raises on input it does not understand."""

from __future__ import annotations


class ParseError(ValueError):
    """Input did not have the shape the parser knows. The message says what was expected,
    without quoting the input (it could hold names the report must not carry)."""
