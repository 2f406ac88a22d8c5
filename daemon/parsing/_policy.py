"""How the email package is driven: policy.default, made fast and bounded.

policy.default parses a header every time it is read, and the feed parser reads each
part's Content-Type five or six times while it splits the message; that alone costs
about a millisecond for a small multipart mail. The policy used here is a clone of
policy.default whose header factory remembers the parsed MIME structure headers
(immutable objects), so each is parsed once. Its parser is also quadratic on some
hostile values (thousands of parameters), so overlong MIME headers are cut before
the bytes reach it.
"""

from __future__ import annotations

import re
from email import policy as email_policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from functools import cache, lru_cache
from typing import Any

# Only headers that describe MIME structure: they repeat across messages
# ('text/plain; charset="utf-8"') and hold no message text.
_MEMOIZED_HEADERS = frozenset(
    {"content-type", "content-disposition", "content-transfer-encoding", "mime-version"}
)
_MAX_MEMOIZED_VALUE = 4096
# Legitimate MIME headers stay far below this, even with long RFC 2231 file names.
_MAX_MIME_HEADER = 4096
_MIME_FIELD_RE = re.compile(rb"content-(?:type|disposition|transfer-encoding)[ \t]*:")


class _MemoizingHeaderFactory:
    """A HeaderRegistry that returns the same parsed object for the same MIME header."""

    def __init__(self) -> None:
        self._registry = HeaderRegistry()
        self._memoized = lru_cache(maxsize=1024)(self._registry.__call__)

    def __call__(self, name: str, value: str) -> Any:
        if name.lower() in _MEMOIZED_HEADERS and len(value) <= _MAX_MEMOIZED_VALUE:
            return self._memoized(name, value)
        return self._registry(name, value)


@cache
def parsing_policy() -> EmailPolicy[EmailMessage]:
    """policy.default with memoized MIME structure headers (built on first use)."""
    return email_policy.default.clone(header_factory=_MemoizingHeaderFactory())


def bound_mime_headers(raw: bytes) -> tuple[bytes, bool]:
    """Cut Content-* header fields longer than the limit; report whether any was cut."""
    if len(raw) <= _MAX_MIME_HEADER:
        return raw, False
    pieces: list[bytes] = []
    pos = 0
    # bytes.find on a lower-cased copy: a multiline regex would try every position.
    lowered = raw.lower()
    start = lowered.find(b"content-")
    while start != -1:
        at_line_start = start == 0 or lowered[start - 1] == 0x0A
        if start >= pos and at_line_start and _MIME_FIELD_RE.match(lowered, start):
            end = _field_end(raw, start)
            if end - start > _MAX_MIME_HEADER:
                pieces.append(raw[pos : start + _MAX_MIME_HEADER].rstrip(b"\r\n"))
                pieces.append(b"\r\n")
                pos = end + 1
        start = lowered.find(b"content-", start + 8)
    if not pieces:
        return raw, False
    pieces.append(raw[pos:])
    return b"".join(pieces), True


def _field_end(raw: bytes, start: int) -> int:
    """Index of the newline that ends the header field starting at ``start``."""
    newline = raw.find(b"\n", start)
    while newline != -1 and raw[newline + 1 : newline + 2] in (b" ", b"\t"):
        newline = raw.find(b"\n", newline + 1)
    return len(raw) if newline == -1 else newline
