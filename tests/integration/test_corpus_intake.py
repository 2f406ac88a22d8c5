"""Every real-world mail of ../shared/corpora, through IMAP: a ticket or a recorded rejection."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models import Message, Quarantine, Ticket
from tests.support.app_factory import build_app, mailbox_settings
from tests.support.imap_tools import ImapAccount, append_many, folder_uids

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


def _corpus_files() -> list[Path]:
    if not CORPORA.is_dir():
        return []
    return sorted(
        path for path in CORPORA.rglob("*") if path.is_file() and path.suffix in {".eml", ".box"}
    )


@pytest.mark.skipif(not CORPORA.is_dir(), reason="../shared/corpora is not present")
def test_every_corpus_mail_is_a_ticket_or_a_recorded_rejection(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _corpus_files()
    assert len(files) >= 80, "the corpus looks incomplete"
    raws = [path.read_bytes() for path in files]
    append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, raws)
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    try:
        report = app.run_once()["support"]
        assert report.stored == len(raws)
        with app.sessions() as session:
            messages = session.scalars(select(Message)).all()
            tickets = session.scalars(select(Ticket)).all()
            entries = session.scalars(select(Quarantine)).all()
    finally:
        app.close()
    errors = [f"{entry.subject!r}: {entry.reason}" for entry in entries if entry.kind == "error"]
    assert errors == [], "\n".join(errors)
    # Duplicates (the same Message-ID with the same content) share one message row.
    assert len(messages) + len(entries) <= len(raws)
    assert len(messages) + len(entries) >= len(raws) - 5
    assert len(tickets) >= len(raws) // 2
    for message in messages:
        assert "\x00" not in message.text and "\x00" not in message.full_text
        assert message.from_email, message.subject
    # Nothing is left behind on the server.
    assert folder_uids(mailbox.host, mailbox.port, mailbox.username, mailbox.password) == []
