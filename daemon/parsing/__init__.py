"""Pure mail parsing: raw bytes in, a :class:`ParsedMessage` out. No I/O, no clock."""

from daemon.parsing.model import Address, Attachment, ParsedMessage
from daemon.parsing.parse import parse_message

__all__ = ["Address", "Attachment", "ParsedMessage", "parse_message"]
