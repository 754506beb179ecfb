"""The manager's members and organisations: add, look up, change, suspend; who pays for whom.

Through :mod:`server.workshop`, :mod:`server.auth.passwords` and :mod:`server.billing.payers`,
as ``/api/v1/members`` and ``/api/v1/organisations`` do. Roles are given with ``atelier
member role`` (as over the API, not here); trainers are made by certifying them.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import selectinload

from server import workshop
from server.api.deps import ClockDep, SessionDep
from server.auth import passwords
from server.auth.sessions import revoke_sessions
from server.billing import catalogue, payers
from server.models import Badge, Member, MemberStatus, Organisation
from server.web import forms
from server.web.render import render
from server.web.session import BillingUser, ManagerUser

router = APIRouter(prefix="/manage", include_in_schema=False)

EMAIL = r"^[^@\s]+@[^@\s]+$"


def _email(value: str) -> str | None:
    cleaned = forms.optional_text(value, limit=254)
    if cleaned is not None and ("@" not in cleaned or any(c.isspace() for c in cleaned)):
        raise forms.BadField("error.invalid_email")
    return cleaned


@router.get("", response_class=HTMLResponse)
def members_page(
    request: Request,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    q: Annotated[str, Query(max_length=120)] = "",
) -> HTMLResponse:
    query = sa.select(Member).options(selectinload(Member.badges)).order_by(Member.name, Member.id)
    if q.strip():
        query = query.where(sa.func.lower(Member.name).contains(q.strip().lower()))
    context = {
        "members": list(db.scalars(query.limit(500))),
        "q": q,
        "organisations": dict(db.execute(sa.select(Organisation.id, Organisation.name)).all()),
    }
    return render(request, "manage/members.html", context, caller=caller, db=db, clock=clock)


@router.post("/members")
def add_member(
    *,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    badge: Annotated[str, Form()] = "",
) -> Response:
    created: list[int] = []

    def act() -> dict[str, object]:
        member = workshop.add_member(
            db, forms.text(name, limit=120), email=_email(email), badge=forms.optional_text(badge, limit=32),
            now=clock(), by=caller.id,
        )  # fmt: skip
        created.append(member.id)
        return {"name": member.name}

    response = forms.attempt(db, act, back="/manage", ok="flash.member_added")
    if created:
        response.headers["location"] = f"/manage/members/{created[0]}"
    return response


@router.get("/members/{member_id}", response_class=HTMLResponse)
def member_page(
    request: Request, member_id: int, caller: ManagerUser, db: SessionDep, clock: ClockDep
) -> HTMLResponse:
    member = db.get(Member, member_id)
    if member is None:
        return render(request, "not_found.html", {}, caller=caller, db=db, clock=clock, status_code=404)
    organisation = db.get(Organisation, member.organisation_id) if member.organisation_id else None
    context = {
        "member": member,
        "badges": list(db.scalars(sa.select(Badge).where(Badge.member_id == member.id).order_by(Badge.id))),
        "organisation": organisation,
        "statuses": list(MemberStatus),
    }
    return render(request, "manage/member.html", context, caller=caller, db=db, clock=clock)


@router.post("/members/{member_id}")
def update_member(
    *,
    member_id: int,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
) -> Response:
    now = clock()

    def act() -> dict[str, object]:
        member = workshop.update_member(
            db, member_id, name=forms.text(name, limit=120), email=_email(email),
            address="\n".join(line.strip() for line in address.splitlines() if line.strip())[:1200],
            by=caller.id, now=now,
        )  # fmt: skip
        if status:
            try:
                chosen = MemberStatus(status)
            except ValueError:
                raise forms.BadField() from None
            workshop.set_member_status(db, member_id, chosen, by=caller.id, now=now)
        return {"name": member.name}

    return forms.attempt(db, act, back=f"/manage/members/{member_id}", ok="flash.member_saved")


@router.post("/members/{member_id}/password")
def set_password(
    *,
    member_id: int,
    caller: ManagerUser,
    db: SessionDep,
    clock: ClockDep,
    password: Annotated[str, Form()] = "",
) -> Response:
    now = clock()

    def act() -> dict[str, object]:
        member = passwords.set_password(db, member_id, password, now=now, by=caller.id)
        revoke_sessions(db, member_id, now=now)
        return {"name": member.name}

    return forms.attempt(db, act, back=f"/manage/members/{member_id}", ok="flash.password_set")


@router.get("/organisations", response_class=HTMLResponse)
def organisations_page(
    request: Request, caller: BillingUser, db: SessionDep, clock: ClockDep
) -> HTMLResponse:
    context = {
        "organisations": payers.organisations(db),
        "lists": [row for row, _ in catalogue.price_lists(db)],
        "members": list(
            db.scalars(
                sa.select(Member)
                .where(Member.organisation_id.is_(None), Member.erased_at.is_(None))
                .order_by(Member.name)
            )
        ),
    }
    return render(request, "manage/organisations.html", context, caller=caller, db=db, clock=clock)


@router.post("/organisations")
def add_organisation(
    *,
    caller: BillingUser,
    db: SessionDep,
    clock: ClockDep,
    name: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    price_list: Annotated[str, Form()] = "",
) -> Response:
    def act() -> dict[str, object]:
        row = payers.add_organisation(
            db, forms.text(name, limit=140),
            address="\n".join(line.strip() for line in address.splitlines() if line.strip())[:1200],
            email=_email(email), price_list=price_list.strip() or None, now=clock(), by=caller.id,
        )  # fmt: skip
        return {"name": row.name}

    return forms.attempt(db, act, back="/manage/organisations", ok="flash.organisation_added")


@router.post("/organisations/{organisation_id}/members")
def attach_member(
    *,
    organisation_id: int,
    caller: BillingUser,
    db: SessionDep,
    clock: ClockDep,
    member_id: Annotated[str, Form()] = "",
) -> Response:
    def act() -> dict[str, object]:
        member = payers.attach_member(
            db, organisation_id, forms.number(member_id, minimum=1), now=clock(), by=caller.id
        )
        return {"name": member.name}

    return forms.attempt(db, act, back="/manage/organisations", ok="flash.attached")


@router.post("/organisations/{organisation_id}/members/{member_id}/detach")
def detach_member(
    *, organisation_id: int, member_id: int, caller: BillingUser, db: SessionDep, clock: ClockDep
) -> Response:
    def act() -> dict[str, object]:
        member = payers.detach_member(
            db, member_id, organisation_id=organisation_id, now=clock(), by=caller.id
        )
        return {"name": member.name}

    return forms.attempt(db, act, back="/manage/organisations", ok="flash.detached")
