"""Training fixtures: the seeded workshop plus a manager, and a clock to move."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from server import workshop as manage
from tests.server.conftest import NOW, Workshop

MANAGER_BADGE = "3A4A0001"


@pytest.fixture
def manager(db: Session, workshop: Workshop) -> int:
    """Manon, a manager who holds no certification at all."""
    member = manage.add_member(db, "Manon Manager", badge=MANAGER_BADGE, now=NOW)
    manage.set_member_roles(db, member.id, manager=True, now=NOW)
    db.commit()
    return member.id
