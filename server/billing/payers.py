"""Who pays: organisations paying for their members' usage, and members of partner associations.

The month close reads who pays for each member when it runs: attaching a member to an
organisation makes it pay for all their usage not invoiced yet, at the organisation's
price list (the default list if it has none); a member of a partner association pays the
partners' list (``member``) unless they have a list of their own. Like
:mod:`server.billing.catalogue`, each step checks first, is audited, flushes and leaves
the commit to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.audit import audit
from server.billing.catalogue import AlreadyRecorded, InvalidEntry, check_name, get_member, get_price_list
from server.billing.store import UnknownRecord, current_settings
from server.models import Member, Organisation, PriceList


def add_organisation(
    db: Session,
    name: str,
    *,
    address: str = "",
    email: str | None = None,
    price_list: str | None = None,
    now: datetime,
    by: int | None = None,
) -> Organisation:
    """An organisation paying for its members' usage, at ``price_list`` (else the default list)."""
    name = check_name(name, "organisation", 140)
    list_id = get_price_list(db, price_list).id if price_list is not None else None
    if email is not None and (len(email) > 254 or "@" not in email):
        raise InvalidEntry(f"{email!r} is not an e-mail address")
    row = Organisation(name=name, address=address.strip(), email=email, price_list_id=list_id, created_at=now)
    db.add(row)
    db.flush()
    audit(
        db, "organisation.add", "organisation", row.id, actor_id=by, at=now,
        details={"name": name, "price_list": price_list},
    )  # fmt: skip
    return row


def get_organisation(db: Session, organisation_id: int) -> Organisation:
    found = db.get(Organisation, organisation_id)
    if found is None:
        raise UnknownRecord(f"no organisation {organisation_id}")
    return found


@dataclass(frozen=True)
class OrganisationView:
    organisation: Organisation
    price_list: str | None
    members: tuple[Member, ...]


def organisations(db: Session, organisation_id: int | None = None) -> list[OrganisationView]:
    """Organisations (or one), with their price list's code and the members they pay for."""
    query = sa.select(Organisation).order_by(Organisation.id)
    if organisation_id is not None:
        get_organisation(db, organisation_id)
        query = query.where(Organisation.id == organisation_id)
    codes = dict(db.execute(sa.select(PriceList.id, PriceList.code)).all())
    paid_for: dict[int, list[Member]] = {}
    for member in db.scalars(
        sa.select(Member).where(Member.organisation_id.is_not(None)).order_by(Member.id)
    ):
        paid_for.setdefault(member.organisation_id or 0, []).append(member)
    return [
        OrganisationView(
            row,
            codes.get(row.price_list_id) if row.price_list_id is not None else None,
            tuple(paid_for.get(row.id, ())),
        )
        for row in db.scalars(query)
    ]


def attach_member(
    db: Session, organisation_id: int, member_id: int, *, now: datetime, by: int | None = None
) -> Member:
    """From now on the organisation pays for the member's usage not yet invoiced, at its price list."""
    organisation = get_organisation(db, organisation_id)
    member = get_member(db, member_id)
    if member.organisation_id == organisation.id:
        raise AlreadyRecorded(f"{organisation.name} pays for member {member_id} ({member.name}) already")
    if member.organisation_id is not None:
        raise AlreadyRecorded(
            f"member {member_id} ({member.name}) is paid for by organisation {member.organisation_id}: "
            "detach them from it first"
        )
    member.organisation_id = organisation.id
    db.flush()
    audit(
        db, "organisation.attach", "organisation", organisation.id, actor_id=by, at=now,
        details={"member_id": member_id},
    )  # fmt: skip
    return member


def detach_member(
    db: Session, member_id: int, *, organisation_id: int | None = None, now: datetime, by: int | None = None
) -> Member:
    """The member pays for their own usage not yet invoiced again."""
    member = get_member(db, member_id)
    if organisation_id is not None:
        get_organisation(db, organisation_id)
    current = member.organisation_id
    if current is None or (organisation_id is not None and current != organisation_id):
        which = f"organisation {organisation_id}" if organisation_id is not None else "any organisation"
        raise UnknownRecord(f"member {member_id} ({member.name}) is not paid for by {which}")
    member.organisation_id = None
    db.flush()
    audit(
        db, "organisation.detach", "organisation", current, actor_id=by, at=now,
        details={"member_id": member_id},
    )  # fmt: skip
    return member


def set_partner(
    db: Session, member_id: int, association: str | None, *, now: datetime, by: int | None = None
) -> Member:
    """Record that the member belongs to a partner association (member prices), or no longer (None)."""
    member = get_member(db, member_id)
    if association is not None:
        association = check_name(association, "partner association")
        if association == member.partner_association:
            raise AlreadyRecorded(f"member {member_id} ({member.name}) is a member of {association} already")
        partner_list = current_settings(db).partner_price_list
        get_price_list(db, partner_list)  # the close would refuse to invoice them without it
    elif member.partner_association is None:
        raise UnknownRecord(f"member {member_id} ({member.name}) belongs to no partner association")
    before = member.partner_association
    member.partner_association = association
    db.flush()
    audit(
        db, "member.partner", "member", member_id, actor_id=by, at=now,
        details={"before": before, "after": association},
    )  # fmt: skip
    return member


def partner_members(db: Session) -> list[Member]:
    return list(
        db.scalars(sa.select(Member).where(Member.partner_association.is_not(None)).order_by(Member.id))
    )
