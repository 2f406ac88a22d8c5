"""``sla explain``, ``escalations due``, the ticket actions and ``tickets list`` filters."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.cli import main
from models import Event, Ticket
from tests.support.app_factory import TEST_SECRET, build_app
from tests.support.mail_factory import complaint

OPENED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database with two tickets opened on a Monday morning, and a config naming it."""
    url = f"sqlite:///{tmp_path / 'sla.db'}"
    app = build_app(url, monkeypatch, clock=lambda: OPENED, base_dir=tmp_path)
    try:
        for sender in ("carla@shop.example", "dan@shop.example"):
            app.service.ingest(complaint(sender=sender, subject=f"Complaint of {sender}"))
    finally:
        app.close()
    monkeypatch.setenv("COMPLAINTD_SECRET", TEST_SECRET)
    path = tmp_path / "c.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n[classifier]\ntrain_on_first_run = false\n', encoding="utf-8"
    )
    return path


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_sla_explain_shows_deadlines_calendar_and_consequences(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _json(capsys, ["--config", str(config), "sla", "explain", "CMP-000001", "--json"])
    assert isinstance(result, dict)
    assert result["ref"] == "CMP-000001" and result["tier"] == 1
    assert result["policy"]["name"] == "medium"
    assert result["calendar"] == {
        "name": "office",
        "time_zone": "Europe/Berlin",
        "counting": "business hours",
        "open_now": result["calendar"]["open_now"],
    }
    kinds = {item["kind"]: item for item in result["deadlines"]}
    assert set(kinds) == {"first_response", "resolution"}
    first = kinds["first_response"]
    assert first["due"] == "2026-11-03T09:00:00+00:00"  # 8 business hours after Monday 10:00
    assert first["budget_seconds"] == 8 * 3600
    # It is long past (the test runs after 2026-11-03): the ticket is overdue, not yet swept.
    assert first["state"] == "overdue"
    assert first["at_deadline"] == "escalates to tier 2 (customer-relations)"
    assert main(["--config", str(config), "sla", "explain", "CMP-999999"]) == 1


def test_escalations_due_lists_overdue_tickets_and_list_filters(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    due = _json(capsys, ["--config", str(config), "escalations", "due", "--within", "1h", "--json"])
    assert isinstance(due, list)
    assert {item["ref"] for item in due} == {"CMP-000001", "CMP-000002"}
    assert all(item["overdue"] for item in due)
    assert {item["action"] for item in due} == {"deadline"}
    overdue = _json(capsys, ["--config", str(config), "tickets", "list", "--overdue", "--json"])
    assert isinstance(overdue, list) and len(overdue) == 2
    tier2 = _json(capsys, ["--config", str(config), "tickets", "list", "--tier", "2", "--json"])
    assert tier2 == []
    triage = _json(
        capsys, ["--config", str(config), "tickets", "list", "--team", "triage", "--json"]
    )
    assert isinstance(triage, list) and len(triage) == 2
    assert main(["--config", str(config), "escalations", "due", "--within", "soon"]) == 2


def test_ticket_actions_move_status_clocks_and_tier(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--config", str(config), "tickets"]
    assert main([*argv, "wait", "CMP-000001", "--as", "anna@example.com"]) == 0
    assert main([*argv, "escalate", "CMP-000002", "--reason", "VIP"]) == 0
    assert main([*argv, "resolve", "CMP-000001"]) == 0
    assert main([*argv, "resolve", "CMP-000001"]) == 1  # already resolved: a clear error
    assert "already resolved" in capsys.readouterr().err
    assert main([*argv, "reopen", "CMP-000001"]) == 0
    assert main([*argv, "wait", "CMP-404404"]) == 1
    from models import create_database_engine, session_factory

    engine = create_database_engine(f"sqlite:///{tmp_path / 'sla.db'}")
    try:
        with session_factory(engine)() as session:
            first, second = session.scalars(select(Ticket).order_by(Ticket.id)).all()
            kinds = [
                e.kind
                for e in session.scalars(
                    select(Event).where(Event.ticket_id == first.id).order_by(Event.id)
                )
            ]
            escalated = session.scalars(
                select(Event).where(Event.ticket_id == second.id, Event.kind == "escalated")
            ).one()
    finally:
        engine.dispose()
    # Reopened by staff: resolution runs again, but no customer is waiting for a reply.
    assert first.status == "open" and first.resolution_due_at is not None
    assert first.next_response_due_at is None
    assert kinds[-3:] == ["waiting", "resolved", "reopened"]
    assert second.tier == 2 and escalated.actor == "admin"
    assert escalated.data["trigger"] == "agent_request" and "VIP" in escalated.data["reason"]
    assert second.first_response_due_at is not None
    assert second.first_response_due_at > OPENED + timedelta(days=1)
