"""Managing the workshop's records: one call per thing a manager does.

The API, the demo seed and the tests create members, badges, skills, gateways,
machines and certifications through these functions instead of writing SQL.
Each adds to the session and flushes (so ids exist and mistakes surface at
once) but does not commit: the caller decides what one transaction is.

Mistakes raise a :class:`WorkshopError` that says what is wrong; each also
inherits the builtin it resembles, so ``except LookupError`` works too.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.ids import is_valid_id
from server.audit import audit
from server.clock import utc_now
from server.models import (
    Badge,
    Certification,
    CertificationLevel,
    Gateway,
    GrantedVia,
    Machine,
    Member,
    MemberStatus,
    SecondFactorConfirmation,
    Skill,
    skill_prerequisites,
)
from server.models.badge import normalise_uid
from server.training.history import record_grant, record_revocation

T = TypeVar("T")

UNCHANGED: Any = object()
"""A keyword left out, where None means something (clear the value)."""


class WorkshopError(Exception):
    """Root of the errors a manager's action can meet."""


class NotFound(WorkshopError, LookupError):
    """The member, badge, skill, gateway, machine or certification does not exist."""


class AlreadyExists(WorkshopError, ValueError):
    """Something with this id (a badge UID, a slug) exists already."""


class Conflict(WorkshopError, ValueError):
    """The action contradicts the record's state (e.g. revoking twice)."""


class InvalidValue(WorkshopError, ValueError):
    """A value that can never be right (a bad slug, a naive datetime)."""


def _check_slug(slug: str, what: str) -> str:
    if not is_valid_id(slug):
        raise InvalidValue(f"invalid {what} id {slug!r}: use a-z, 0-9 and '-', 1 to 64 characters")
    return slug


def _utc(moment: datetime, what: str) -> datetime:
    """``moment`` in UTC, as it will read back from the database."""
    if moment.utcoffset() is None:
        raise InvalidValue(f"{what} needs a time zone")
    return moment.astimezone(UTC)


def _when(now: datetime | None) -> datetime:
    return utc_now() if now is None else _utc(now, "now")


def _added(db: Session, thing: T) -> T:
    db.add(thing)
    db.flush()
    return thing


# Members and badges


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
    at = _when(now)
    member = _added(db, Member(name=name.strip(), email=email, status=status, created_at=at))
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
            db, "member.status", "member", member.id, actor_id=by, at=_when(now),
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
            db, "member.update", "member", member.id, actor_id=by, at=_when(now), details={"changed": changed}
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
    at = _when(now)
    badge = _added(db, Badge(uid=uid, member_id=member_id, enrolled_at=at))
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
            db, "badge.enable" if active else "badge.disable", "badge", badge.id, actor_id=by, at=_when(now),
            details={"member_id": badge.member_id},
        )  # fmt: skip
    return badge


# Skills and certifications


def add_skill(
    db: Session,
    slug: str,
    name: str,
    description: str = "",
    *,
    prerequisites: Iterable[str] = (),
    disuse_months: int | None = None,
) -> Skill:
    """A skill; ``prerequisites`` (slugs) must be held before it is certified, and a
    certification in it lapses after ``disuse_months`` months without use, when given."""
    _check_slug(slug, "skill")
    if db.scalar(sa.select(Skill.id).where(Skill.slug == slug)) is not None:
        raise AlreadyExists(f"skill {slug} exists already")
    _added(db, Skill(slug=slug, name=name, description=description))
    return set_skill_training(db, slug, prerequisites=prerequisites, disuse_months=disuse_months)


def set_skill_training(
    db: Session,
    slug: str,
    *,
    prerequisites: Iterable[str] | None = None,
    disuse_months: int | None = UNCHANGED,
) -> Skill:
    """Change a skill's prerequisites (slugs; None leaves them) and its disuse period
    (None: never lapses by disuse; left out: unchanged). A skill cannot require itself,
    even through others."""
    skill = get_skill(db, slug)
    if disuse_months is not UNCHANGED:
        if disuse_months is not None and not 1 <= disuse_months <= 120:
            raise InvalidValue(f"a disuse period is 1 to 120 months, not {disuse_months}")
        skill.disuse_months = disuse_months
    if prerequisites is not None:
        required = sorted(
            {get_skill(db, other) for other in set(prerequisites)}, key=lambda other: other.slug
        )
        for other in required:
            if other.id == skill.id or skill.id in _prerequisites_of(db, other.id):
                raise InvalidValue(
                    f"{other.slug} cannot be a prerequisite of {slug}: it would require itself"
                )
        skill.prerequisites = required
    db.flush()
    return skill


def _prerequisites_of(db: Session, skill_id: int) -> set[int]:
    """Every skill ``skill_id`` requires, directly or through others."""
    found: set[int] = set()
    frontier = {skill_id}
    while frontier:
        frontier = (
            set(
                db.scalars(
                    sa.select(skill_prerequisites.c.prerequisite_id).where(
                        skill_prerequisites.c.skill_id.in_(sorted(frontier))
                    )
                )
            )
            - found
        )
        found |= frontier
    return found


def get_skill(db: Session, slug: str) -> Skill:
    skill = db.scalar(sa.select(Skill).where(Skill.slug == slug))
    if skill is None:
        raise NotFound(f"no skill {slug}")
    return skill


def grant_certification(
    db: Session,
    member_id: int,
    skill: str,
    *,
    level: CertificationLevel = CertificationLevel.AUTONOMOUS,
    granted_by: int | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    via: GrantedVia = GrantedVia.SEED,
    note: str | None = None,
) -> Certification:
    """Record that a member is certified in ``skill`` (a slug) by ``granted_by`` (a member id),
    with its history event and audit entry.

    This checks no rule of who may certify: it is how a manager's tool seeds records, and what
    :func:`server.training.certify.grant` calls once the rules are met.
    """
    if expires_at is not None:
        expires_at = _utc(expires_at, "expires_at")
    get_member(db, member_id)
    found = get_skill(db, skill)
    if granted_by is not None:
        get_member(db, granted_by)
    certification = _added(
        db,
        Certification(
            member_id=member_id,
            skill_id=found.id,
            level=level,
            granted_by_id=granted_by,
            granted_at=_when(now),
            granted_via=via,
            expires_at=expires_at,
        ),
    )
    record_grant(db, certification, note=note, skill=found.slug)
    db.flush()
    return certification


def get_certification(db: Session, certification_id: int) -> Certification:
    certification = db.get(Certification, certification_id)
    if certification is None:
        raise NotFound(f"no certification {certification_id}")
    return certification


def revoke_certification(
    db: Session,
    certification_id: int,
    *,
    reason: str | None = None,
    now: datetime | None = None,
    by: int | None = None,
    via: GrantedVia = GrantedVia.SEED,
) -> Certification:
    """Record a revocation by ``by`` (a member id), with its event and audit entry; no rule
    is checked here (see :func:`server.training.certify.revoke`)."""
    certification = get_certification(db, certification_id)
    if certification.revoked_at is not None:
        raise Conflict(f"certification {certification_id} was already revoked")
    if by is not None:
        get_member(db, by)
    certification.revoked_at = _when(now)
    certification.revoked_by_id = by
    certification.revoke_reason = reason
    db.flush()
    record_revocation(
        db, certification, via=via.value, skill=certification.skill.slug, at=certification.revoked_at
    )
    db.flush()
    return certification


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
            at=_when(now),
            details={"before": before, "after": after},
        )
    db.flush()
    return member


# Gateways and machines


def add_gateway(db: Session, slug: str, *, site: str, name: str = "") -> Gateway:
    """Register a gateway for ``site``: until then the server refuses to answer it."""
    _check_slug(slug, "gateway")
    _check_slug(site, "site")
    if db.scalar(sa.select(Gateway.id).where(Gateway.slug == slug)) is not None:
        raise AlreadyExists(f"gateway {slug} exists already")
    return _added(db, Gateway(slug=slug, site=site, name=name or slug))


def get_gateway(db: Session, slug: str) -> Gateway:
    gateway = db.scalar(sa.select(Gateway).where(Gateway.slug == slug))
    if gateway is None:
        raise NotFound(f"no gateway {slug}")
    return gateway


def add_machine(
    db: Session,
    slug: str,
    name: str,
    *,
    machine_class: str,
    gateway: str | None = None,
    required_skills: Iterable[str] = (),
) -> Machine:
    """A machine, wired to ``gateway`` (a slug) and requiring ``required_skills`` (slugs)."""
    _check_slug(slug, "machine")
    if db.scalar(sa.select(Machine.id).where(Machine.slug == slug)) is not None:
        raise AlreadyExists(f"machine {slug} exists already")
    # Sorted as the relationship reads them back, so the new object looks the same as a loaded one.
    skills = sorted((get_skill(db, skill) for skill in set(required_skills)), key=lambda skill: skill.slug)
    return _added(
        db,
        Machine(
            slug=slug,
            name=name,
            machine_class=machine_class,
            gateway=get_gateway(db, gateway) if gateway is not None else None,
            required_skills=skills,
        ),
    )


def get_machine(db: Session, slug: str) -> Machine:
    machine = db.scalar(sa.select(Machine).where(Machine.slug == slug))
    if machine is None:
        raise NotFound(f"no machine {slug}")
    return machine


def set_second_factor(
    db: Session, slug: str, second_factor: bool, *, by: int | None = None, now: datetime | None = None
) -> Machine:
    """Ask (or stop asking) for a confirmation in the web app on top of the badge (docs/security.md, "Badges")."""
    machine = get_machine(db, slug)
    machine.second_factor = second_factor
    db.flush()
    audit(
        db, "machine.second_factor", "machine", machine.slug, actor_id=by, at=_when(now),
        details={"second_factor": second_factor},
    )  # fmt: skip
    return machine


def confirm_at_machine(db: Session, member_id: int, slug: str, *, now: datetime) -> Machine:
    """Record a member's "I am at this machine" (signed in to the web app): their badge is then
    granted on it once, within the second-factor window (:func:`server.access.decide`)."""
    machine = get_machine(db, slug)
    if not machine.second_factor:
        raise InvalidValue(f"machine {slug} asks for no confirmation")
    db.add(
        SecondFactorConfirmation(member_id=member_id, machine_id=machine.id, confirmed_at=_utc(now, "now"))
    )
    db.flush()
    return machine


def set_lockout(
    db: Session,
    slug: str,
    locked_out: bool,
    reason: str | None = None,
    *,
    by: int | None = None,
    now: datetime | None = None,
) -> Machine:
    """Lock a machine out (broken, being serviced) or back in; badge taps are refused meanwhile."""
    machine = get_machine(db, slug)
    machine.locked_out = locked_out
    machine.lockout_reason = reason if locked_out else None
    db.flush()
    audit(
        db, "machine.lockout" if locked_out else "machine.lockout_lift", "machine", machine.slug, actor_id=by,
        at=_when(now), details={"reason": machine.lockout_reason},
    )  # fmt: skip
    return machine
