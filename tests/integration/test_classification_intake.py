"""Tickets carry the active model's prediction; activating another model swaps it live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from classifier import default_training_files, load_examples, train_model
from daemon.app import Application
from daemon.model_registry import ModelRegistry
from daemon.service import IngestOutcome
from models import Event, Ticket
from tests.support.app_factory import activate_model, build_app, train_small_model
from tests.support.mail_factory import complaint, reply_to


@pytest.fixture(scope="module")
def small_model() -> object:
    return train_small_model()


@pytest.fixture
def app(
    tmp_path: Path, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch, small_model: object
) -> Iterator[Application]:
    application = build_app(
        tmp_db_url,
        monkeypatch,
        base_dir=tmp_path,
        classifier={"train_on_first_run": False, "model_dir": str(tmp_path / "models")},
    )
    activate_model(application, small_model, tmp_path / "models")
    yield application
    application.close()


def _ticket(app: Application, ref: str | None) -> Ticket:
    with app.sessions() as session:
        return session.scalars(select(Ticket).where(Ticket.ref == ref)).one()


def test_new_ticket_gets_category_severity_signals_and_model_version(app: Application) -> None:
    mail = complaint(
        subject="Charged twice, I will involve my lawyer",
        body="You charged my card twice for invoice 4411 (129 EUR each). If the second "
        "payment is not refunded this week I will hand this to my lawyer.\n",
    )
    result = app.service.ingest(mail)
    assert result.outcome is IngestOutcome.CREATED
    ticket = _ticket(app, result.ticket_ref)
    assert ticket.category is not None and ticket.category_confidence is not None
    assert 0.0 <= ticket.category_confidence <= 1.0
    assert ticket.severity == "critical"  # the legal threat sets the floor
    assert "legal_threat" in ticket.signals
    assert ticket.model_version == app.classifier.version
    assert ticket.language == "en"
    with app.sessions() as session:
        kinds = list(session.scalars(select(Event.kind).where(Event.ticket_id == ticket.id)))
    assert "classified" in kinds


def test_follow_up_never_lowers_severity_and_adds_signals(app: Application) -> None:
    first = app.service.ingest(
        complaint(sender="anna@example.com", subject="Question about my invoice",
                  body="Could you tell me when the invoice for October is due?\n")
    )  # fmt: skip
    before = _ticket(app, first.ticket_ref)
    angry = reply_to(
        b"", sender="anna@example.com", subject=f"Re: invoice [{first.ticket_ref}]",
        body="This is the third time I write. I want to speak to a manager now.\n",
    )  # fmt: skip
    assert app.service.ingest(angry).outcome is IngestOutcome.ADDED
    after = _ticket(app, first.ticket_ref)
    order = ["low", "medium", "high", "critical"]
    assert order.index(after.severity or "low") >= order.index(before.severity or "low")
    assert "escalation_request" in after.signals


def test_activating_another_model_is_picked_up_without_restart(
    app: Application, tmp_path: Path, small_model: object
) -> None:
    old = app.classifier.version
    examples = load_examples(default_training_files())[1::3]
    other = train_model(examples, seed=1, cv_folds=2, progress=False)
    with app.sessions() as session:
        registry = ModelRegistry(session, tmp_path / "models")
        row = registry.store(other)
        registry.activate(row.version)
        session.commit()
        new_version = row.version
    assert new_version != old
    app.classifier.refresh(force=True)
    result = app.service.ingest(complaint())
    assert _ticket(app, result.ticket_ref).model_version == new_version


def test_a_tampered_model_is_refused_and_the_previous_one_kept(
    app: Application, tmp_path: Path
) -> None:
    old = app.classifier.version
    examples = load_examples(default_training_files())[2::3]
    other = train_model(examples, seed=2, cv_folds=2, progress=False)
    with app.sessions() as session:
        registry = ModelRegistry(session, tmp_path / "models")
        row = registry.store(other)
        registry.activate(row.version)
        session.commit()
    # Changed on disk after it was activated (activating a changed file is refused).
    model_file = Path(row.path) / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    app.classifier.refresh(force=True)
    assert app.classifier.version == old
    result = app.service.ingest(complaint())
    assert _ticket(app, result.ticket_ref).model_version == old


def test_without_any_model_tickets_are_stored_unclassified(
    tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = build_app(tmp_db_url, monkeypatch)
    try:
        result = bare.service.ingest(complaint(body="Guten Tag, mein Paket ist nicht da.\n"))
        ticket = _ticket(bare, result.ticket_ref)
        assert ticket.category is None and ticket.model_version is None
        assert ticket.language == "de"
        assert ticket.team is not None  # routed anyway (to triage rules)
    finally:
        bare.close()
