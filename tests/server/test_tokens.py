"""API tokens: shown once, stored as a hash, scoped, expiring, revocable, and in the audit trail."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import workshop as manage
from server.auth.scopes import EVERY_SCOPE, Scope, effective, format_scopes, parse_scopes
from server.auth.tokens import PREFIX, create_token, find_token, list_tokens, member_for_token, revoke_token
from server.models import ApiToken, AuditEntry
from tests.server.conftest import NOW, Workshop


def test_a_token_acts_as_its_member_until_revoked(db: Session, workshop: Workshop) -> None:
    issued = create_token(db, workshop.trainer, scopes={Scope.TRAINING}, now=NOW, label=" Tess laptop ")
    db.commit()
    assert issued.token.startswith(PREFIX)
    assert len(issued.token) > 40
    assert (issued.member_id, issued.label) == (workshop.trainer, "Tess laptop")
    member = member_for_token(db, issued.token, NOW)
    assert member is not None
    assert member.id == workshop.trainer
    # Only the hash is kept.
    row = db.get(ApiToken, issued.id)
    assert row is not None
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert (row.scopes, issued.scopes) == ("read training", frozenset({Scope.READ, Scope.TRAINING}))
    stored = db.execute(sa.select(ApiToken.token_hash, ApiToken.label)).all()
    assert all(issued.token not in value for values in stored for value in values)
    revoke_token(db, issued.id, now=NOW)
    db.commit()
    assert member_for_token(db, issued.token, NOW) is None
    with pytest.raises(manage.Conflict, match="already revoked"):
        revoke_token(db, issued.id, now=NOW)
    actions = db.scalars(
        sa.select(AuditEntry.action).where(AuditEntry.subject_type == "api_token").order_by(AuditEntry.id)
    ).all()
    assert actions == ["token.create", "token.revoke"]


def test_tokens_are_distinct_and_listed(db: Session, workshop: Workshop) -> None:
    first = create_token(db, workshop.alice, scopes=EVERY_SCOPE, now=NOW)
    second = create_token(db, workshop.alice, scopes=EVERY_SCOPE, now=NOW)
    create_token(db, workshop.bob, scopes={Scope.READ}, now=NOW)
    assert first.token != second.token
    assert [token.id for token in list_tokens(db, workshop.alice)] == [first.id, second.id]
    assert len(list_tokens(db)) == 3


@pytest.mark.parametrize("token", ["", "atl_", "atl_unknown", "nope", "x" * 500, PREFIX + "y" * 300])
def test_unknown_tokens(db: Session, workshop: Workshop, token: str) -> None:
    assert member_for_token(db, token, NOW) is None


def test_errors(db: Session, workshop: Workshop) -> None:
    with pytest.raises(manage.NotFound):
        create_token(db, 999, scopes=EVERY_SCOPE, now=NOW)
    with pytest.raises(manage.NotFound):
        revoke_token(db, 999, now=NOW)
    with pytest.raises(manage.InvalidValue):
        create_token(db, workshop.bob, scopes=EVERY_SCOPE, now=NOW, label="L" * 121)
    with pytest.raises(manage.InvalidValue, match="at least one scope"):
        create_token(db, workshop.bob, scopes=(), now=NOW)
    with pytest.raises(manage.InvalidValue, match="future"):
        create_token(db, workshop.bob, scopes=EVERY_SCOPE, now=NOW, expires_at=NOW)


def test_a_token_stops_at_its_expiry(db: Session, workshop: Workshop) -> None:
    issued = create_token(db, workshop.bob, scopes={Scope.READ}, now=NOW, expires_at=NOW + timedelta(days=30))
    db.commit()
    assert member_for_token(db, issued.token, NOW + timedelta(days=29)) is not None
    assert member_for_token(db, issued.token, NOW + timedelta(days=30)) is None
    found = find_token(db, issued.token, NOW)
    assert found is not None
    assert found[0].expires_at == NOW + timedelta(days=30)


def test_scopes_are_parsed_and_each_includes_read() -> None:
    assert parse_scopes(["read,training", "Billing"]) == {Scope.READ, Scope.TRAINING, Scope.BILLING}
    assert format_scopes({Scope.MANAGE, Scope.READ}) == "read manage"
    assert effective({Scope.BILLING}) == {Scope.READ, Scope.BILLING}
    with pytest.raises(ValueError, match="unknown scope 'admin'"):
        parse_scopes(["admin"])
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes([" , "])


def test_roles_are_in_the_audit_trail(db: Session, workshop: Workshop) -> None:
    manage.set_member_roles(db, workshop.bob, manager=True, by=workshop.trainer, now=NOW)
    manage.set_member_roles(db, workshop.bob, manager=True, now=NOW)  # no change, no entry
    manage.set_member_roles(db, workshop.bob, treasurer=True, manager=False, now=NOW)
    db.commit()
    entries = db.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "member.roles").order_by(AuditEntry.id)
    ).all()
    assert [(entry.actor_id, entry.subject_id, entry.details) for entry in entries] == [
        (
            workshop.trainer,
            str(workshop.bob),
            {
                "before": {"manager": False, "treasurer": False},
                "after": {"manager": True, "treasurer": False},
            },
        ),
        (
            None,
            str(workshop.bob),
            {"before": {"manager": True, "treasurer": False}, "after": {"manager": False, "treasurer": True}},
        ),
    ]
