"""The server records expiries when it starts, and keeps doing so."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.app import create_app
from server.db import SessionFactory
from server.models import Certification, CertificationEvent, CertificationEventKind
from server.settings import Settings
from server.training.sweeper import ExpirySweeper
from tests.server.conftest import NOW, Workshop


def expired_events(db: Session) -> list[int]:
    return list(
        db.scalars(
            sa.select(CertificationEvent.certification_id).where(
                CertificationEvent.kind == CertificationEventKind.EXPIRED
            )
        )
    )


def test_the_server_sweeps_at_start(database_url: str, workshop: Workshop, db: Session) -> None:
    settings = Settings(database_url=database_url, site=workshop.site)
    app = create_app(settings, mqtt=False)
    with TestClient(app):
        sweeper = app.state.sweeper
        assert isinstance(sweeper, ExpirySweeper)
        assert sweeper.swept.wait(10), "the first sweep ran"
    erins = db.scalars(
        sa.select(Certification.id).where(
            Certification.member_id == workshop.erin, Certification.lapsed_at.is_not(None)
        )
    ).all()
    assert len(erins) == 1
    assert erins[0] in expired_events(db)


def test_a_sweeper_runs_again_and_records_nothing_twice(
    session_factory: SessionFactory, workshop: Workshop
) -> None:
    sweeper = ExpirySweeper(session_factory, interval_s=0.01, clock=lambda: NOW)
    sweeper.start()
    try:
        for _ in range(3):
            sweeper.swept.clear()
            assert sweeper.swept.wait(10)
    finally:
        sweeper.stop()
    with session_factory() as db:
        assert len(expired_events(db)) == 1  # Erin's, once
    assert sweeper.sweep_once() == []
