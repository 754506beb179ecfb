"""Who pays: organisations paying for their members, and members of partner associations.

The treasurer and managers read and change them. Every change is in the audit trail. Who pays for a member is read at the
month close: attaching a member makes the organisation pay for their usage not yet invoiced.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, StringConstraints

from protocol.ids import ID_PATTERN
from server.api.deps import ClockDep, SessionDep
from server.api.routes.members import Email
from server.auth.policy import BillingRead, BillingWrite
from server.billing import payers
from server.models import Member

router = APIRouter(tags=["organisations"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)]
AddressLine = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    address: list[AddressLine] = []
    """Printed on its invoices, one line per item."""
    email: Email | None = None
    price_list: Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=40)] | None = None
    """The code of the list it pays; the default list if none."""


class PaidMemberOut(BaseModel):
    id: int
    name: str


class OrganisationOut(BaseModel):
    id: int
    name: str
    address: list[str]
    email: str | None
    price_list: str | None
    created_at: datetime
    members: list[PaidMemberOut]
    """The members whose usage it pays for."""

    @classmethod
    def of(cls, view: payers.OrganisationView) -> OrganisationOut:
        row = view.organisation
        return cls(
            id=row.id,
            name=row.name,
            address=row.address.splitlines(),
            email=row.email,
            price_list=view.price_list,
            created_at=row.created_at,
            members=[PaidMemberOut(id=m.id, name=m.name) for m in view.members],
        )


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    association: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class PartnerOut(BaseModel):
    member_id: int
    name: str
    association: str | None

    @classmethod
    def of(cls, member: Member) -> PartnerOut:
        return cls(member_id=member.id, name=member.name, association=member.partner_association)


@router.get("/organisations")
def list_organisations(caller: BillingRead, db: SessionDep) -> list[OrganisationOut]:
    return [OrganisationOut.of(view) for view in payers.organisations(db)]


@router.post("/organisations", status_code=status.HTTP_201_CREATED)
def add_organisation(
    body: OrganisationIn, caller: BillingWrite, db: SessionDep, clock: ClockDep
) -> OrganisationOut:
    """A new organisation; 404 if its price list does not exist."""
    row = payers.add_organisation(
        db, body.name, address="\n".join(line for line in body.address if line), email=body.email,
        price_list=body.price_list, now=clock(), by=caller.id,
    )  # fmt: skip
    db.commit()
    return OrganisationOut.of(payers.organisations(db, row.id)[0])


@router.get("/organisations/{organisation_id}")
def get_organisation(organisation_id: int, caller: BillingRead, db: SessionDep) -> OrganisationOut:
    return OrganisationOut.of(payers.organisations(db, organisation_id)[0])


@router.put("/organisations/{organisation_id}/members/{member_id}")
def attach_member(
    organisation_id: int, member_id: int, caller: BillingWrite, db: SessionDep, clock: ClockDep
) -> OrganisationOut:
    """The organisation pays for the member's usage from now on (all that is not invoiced yet).

    409 if it does already, or if another organisation does (detach the member from it first).
    """
    payers.attach_member(db, organisation_id, member_id, now=clock(), by=caller.id)
    db.commit()
    return OrganisationOut.of(payers.organisations(db, organisation_id)[0])


@router.delete("/organisations/{organisation_id}/members/{member_id}")
def detach_member(
    organisation_id: int, member_id: int, caller: BillingWrite, db: SessionDep, clock: ClockDep
) -> OrganisationOut:
    """The member pays for their own usage not yet invoiced again; 404 if the organisation did not pay."""
    payers.detach_member(db, member_id, organisation_id=organisation_id, now=clock(), by=caller.id)
    db.commit()
    return OrganisationOut.of(payers.organisations(db, organisation_id)[0])


@router.get("/partner-members")
def list_partner_members(caller: BillingRead, db: SessionDep) -> list[PartnerOut]:
    """Members of partner associations: they pay the partners' (member) price list."""
    return [PartnerOut.of(member) for member in payers.partner_members(db)]


@router.put("/partner-members/{member_id}")
def set_partner(
    member_id: int, body: PartnerIn, caller: BillingWrite, db: SessionDep, clock: ClockDep
) -> PartnerOut:
    """Record that the member belongs to a partner association; 404 if the partners' list does not exist."""
    member = payers.set_partner(db, member_id, body.association, now=clock(), by=caller.id)
    db.commit()
    return PartnerOut.of(member)


@router.delete("/partner-members/{member_id}")
def clear_partner(member_id: int, caller: BillingWrite, db: SessionDep, clock: ClockDep) -> PartnerOut:
    member = payers.set_partner(db, member_id, None, now=clock(), by=caller.id)
    db.commit()
    return PartnerOut.of(member)
