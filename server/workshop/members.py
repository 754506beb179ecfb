"""Members, their badges and their roles: adding and changing them, each change in the audit trail."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.audit import audit
from server.models import Badge, Member, MemberStatus
from server.models.badge import normalise_uid
from server.workshop.errors import AlreadyExists, Conflict, InvalidValue, NotFound
from server.workshop.records import UNCHANGED, added, when


def add_member(
    db: Session,
    name: str,
    *,
    email: str | None = None,
    badge: str | None = None,
    status: MemberStatus = MemberStatus.ACTIVE,
    now: datetime | None = None,
    by: int | None = None,
) -> Member:
    """A new member, with a badge enrolled for them when ``badge`` (a hex UID) is given.

    Like every change to a member or a badge here, it goes to the audit trail with ``by``,
    the member who acted (None: a command-line tool or the server). The trail names the
    fields that changed but never holds their personal values (a name, an e-mail, a badge
    UID), so that erasing a member (:mod:`server.privacy`) leaves it as it is.
    """
    if not name.strip():
        raise InvalidValue("a member needs a name")
    at = when(now)
    member = added(db, Member(name=name.strip(), email=email, status=status, created_at=at))
    audit(db, "member.create", "member", member.id, actor_id=by, at=at, details={"status": status})
    if badge is not None:
        enrol_badge(db, member.id, badge, now=now, by=by)
    return member


def get_member(db: Session, member_id: int) -> Member:
    member = db.get(Member, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    return member


def check_not_erased(member: Member) -> Member:
    """``member``, unless erased: an erased member's record no longer changes."""
    if member.erased_at is not None:
        raise Conflict(f"member {member.id} was erased: their record no longer changes")
    return member


def set_member_status(
    db: Session, member_id: int, status: MemberStatus, *, by: int | None = None, now: datetime | None = None
) -> Member:
    member = check_not_erased(get_member(db, member_id))
    before = member.status
    member.status = status
    db.flush()
    if status is not before:
        audit(
            db, "member.status", "member", member.id, actor_id=by, at=when(now),
            details={"before": before, "after": status},
        )  # fmt: skip
    return member


def update_member(
    db: Session,
    member_id: int,
    *,
    name: str | None = None,
    email: str | None = UNCHANGED,
    address: str | None = None,
    by: int | None = None,
    now: datetime | None = None,
) -> Member:
    """Change a member's name, e-mail (None clears it; left out: unchanged) or postal address."""
    member = check_not_erased(get_member(db, member_id))
    changed = []
    if name is not None:
        if not name.strip():
            raise InvalidValue("a member needs a name")
        if name.strip() != member.name:
            member.name = name.strip()
            changed.append("name")
    if email is not UNCHANGED and email != member.email:
        member.email = email
        changed.append("email")
    if address is not None and address != member.address:
        member.address = address
        changed.append("address")
    db.flush()
    if changed:
        audit(
            db, "member.update", "member", member.id, actor_id=by, at=when(now), details={"changed": changed}
        )
    return member


def enrol_badge(
    db: Session, member_id: int, uid: str, *, now: datetime | None = None, by: int | None = None
) -> Badge:
    """Enrol badge ``uid`` (hex, any case) for a member; a UID is enrolled once only."""
    try:
        uid = normalise_uid(uid)
    except ValueError as error:
        raise InvalidValue(str(error)) from None
    check_not_erased(get_member(db, member_id))
    if db.scalar(sa.select(Badge.id).where(Badge.uid == uid)) is not None:
        raise AlreadyExists(f"badge {uid} is already enrolled")
    at = when(now)
    badge = added(db, Badge(uid=uid, member_id=member_id, enrolled_at=at))
    # The badge's row id, not its UID: the trail keeps no badge number (see add_member).
    audit(db, "badge.enrol", "badge", badge.id, actor_id=by, at=at, details={"member_id": member_id})
    return badge


def get_badge(db: Session, uid: str) -> Badge:
    badge = db.scalar(sa.select(Badge).where(Badge.uid == uid.strip().upper()))
    if badge is None:
        raise NotFound(f"no badge {uid}")
    return badge


def set_badge_active(
    db: Session, uid: str, active: bool, *, by: int | None = None, now: datetime | None = None
) -> Badge:
    """Disable a lost badge (or enable it again); its history stays."""
    badge = get_badge(db, uid)
    if active:
        check_not_erased(badge.member)
    if badge.active is not active:
        badge.active = active
        db.flush()
        audit(
            db, "badge.enable" if active else "badge.disable", "badge", badge.id, actor_id=by, at=when(now),
            details={"member_id": badge.member_id},
        )  # fmt: skip
    return badge


def set_member_roles(
    db: Session,
    member_id: int,
    *,
    manager: bool | None = None,
    treasurer: bool | None = None,
    by: int | None = None,
    now: datetime | None = None,
) -> Member:
    """Give or take the manager and treasurer roles (None leaves one as it is), in the audit trail.

    Trainers are not named here: a member trains the skills they hold at the trainer level.
    """
    member = check_not_erased(get_member(db, member_id))
    before = {"manager": member.is_manager, "treasurer": member.is_treasurer}
    if manager is not None:
        member.is_manager = manager
    if treasurer is not None:
        member.is_treasurer = treasurer
    after = {"manager": member.is_manager, "treasurer": member.is_treasurer}
    if after != before:
        audit(
            db,
            "member.roles",
            "member",
            member.id,
            actor_id=by,
            at=when(now),
            details={"before": before, "after": after},
        )
    db.flush()
    return member
