"""Plain-text rendering of CLI views for people (tools use ``--json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["render_table", "render_ticket"]

_MAX_CELL = 48


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned table with a header; "(none)" when empty."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    lines = ["  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns))]
    lines += ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def render_ticket(ticket: dict[str, Any]) -> str:
    """A ticket with its messages and events, for reading in a terminal."""
    lines = [
        f"{ticket['ref']}  [{ticket['status']}]  {ticket['subject']}",
        f"customer: {ticket['customer_name']} <{ticket['customer_email']}>",
        f"category: {ticket['category']}  severity: {ticket['severity']}  "
        f"tier: {ticket['tier']}  assignee: {ticket['assignee']}",
        "",
    ]
    for message in ticket["messages"]:
        lines.append(
            f"--- {message['direction']} {message['kind']} from {message['from_email']} "
            f"at {message['received_at']}"
        )
        lines.append(message["text"].strip() or "(no text)")
        for attachment in message["attachments"]:
            lines.append(f"    [attachment] {attachment['filename']} ({attachment['size']} bytes)")
        lines.append("")
    lines.append("events:")
    lines += [f"  {event['at']}  {event['kind']}  {event['actor']}" for event in ticket["events"]]
    return "\n".join(lines)
