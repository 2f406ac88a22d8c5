"""The scheduler on the wall clock: a deadline between periodic sweeps is acted on at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.service import IngestOutcome
from models import Event, Ticket
from routing import RoutingConfig, default_routing_config
from tests.support.app_factory import build_app
from tests.support.mail_factory import complaint


def _fast_routing() -> RoutingConfig:
    """The default routing, plus a 24x7 policy with a 2-second first response for one domain."""
    document = default_routing_config().model_dump()
    document["sla_policies"] = [
        *document["sla_policies"],
        {
            "name": "seconds",
            "severity": ["low", "medium", "high", "critical"],
            "customers": ["*@impatient.example"],
            "business_hours": False,
            "first_response": "2s",
            "next_response": "2s",
            "resolution": "1h",
        },
    ]
    return RoutingConfig.model_validate(document)


def test_a_new_deadline_is_acted_on_without_waiting_for_the_periodic_sweep(
    tmp_path: Path, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(
        tmp_db_url,
        monkeypatch,
        base_dir=tmp_path,
        routing_config=_fast_routing(),
        scheduler={"sweep_interval_seconds": 600},  # the periodic sweep will not help
    )
    scheduler = app.scheduler()
    assert scheduler is not None
    scheduler.start()
    try:
        time.sleep(0.5)  # the first periodic sweep has run and found nothing
        result = app.service.ingest(complaint(sender="ivy@impatient.example"))
        assert result.outcome is IngestOutcome.CREATED
        with app.sessions() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.ref == result.ticket_ref)).one()
        due = ticket.first_response_due_at
        assert ticket.sla_policy == "seconds" and due is not None
        escalated: list[Event] = []
        deadline = time.monotonic() + 15
        while not escalated and time.monotonic() < deadline:
            time.sleep(0.2)
            with app.sessions() as session:
                escalated = list(
                    session.scalars(
                        select(Event).where(Event.ticket_id == ticket.id, Event.kind == "escalated")
                    )
                )
    finally:
        scheduler.shutdown()
        app.close()
    assert escalated, "the ticket was not escalated within 15 s of a 2 s deadline"
    # Acted on within the watch period (2 s) plus a margin for this busy machine.
    assert (escalated[0].at - due).total_seconds() < 4.0
